# Allocates heavily: many small objects, growing containers, big strings, JSON round trips.
import json

data = {}
for i in range(60000):
    data["k%d" % i] = [i, str(i) * (i % 17), {"x": i * 2.5}]
text = json.dumps(data, sort_keys=True)
back = json.loads(text)
assert back == data
words = sorted((s[::-1] for s in text.split(",")), key=lambda w: (len(w), w))
chunks = [bytearray(b"%d" % i) * (i % 300) for i in range(20000)]
total = sum(len(c) for c in chunks)
del chunks
print(len(text), len(words), words[0], words[-1][:20], total)
