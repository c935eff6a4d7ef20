//! The process malloc (`mainmem` with its thread caches) against glibc's malloc and
//! mimalloc: one thread, two threads, and a producer/consumer pair where every block is
//! freed by the other thread.
//!
//! ```sh
//! cargo bench -p mempools-benches --bench malloc_threads -- --warm-up-time 1 --measurement-time 2
//! ```

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mempools_arena::mainmem;

/// One allocator under test, as plain functions over raw pointers.
#[derive(Clone, Copy)]
struct Peer {
    name: &'static str,
    alloc: fn(usize) -> usize,
    free: fn(usize),
}

fn glibc_alloc(n: usize) -> usize {
    // SAFETY: plain malloc.
    unsafe { libc::malloc(n) as usize }
}
fn glibc_free(p: usize) {
    // SAFETY: `p` came from `glibc_alloc`.
    unsafe { libc::free(std::ptr::with_exposed_provenance_mut(p)) }
}
fn mainmem_alloc(n: usize) -> usize {
    mainmem::malloc(n).map_or(0, |p| p.as_ptr().expose_provenance())
}
fn mainmem_free(p: usize) {
    if let Some(p) = std::ptr::NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(p)) {
        // SAFETY: `p` came from `mainmem_alloc`.
        unsafe { mainmem::free(p) }
    }
}
fn mi_alloc(n: usize) -> usize {
    // SAFETY: a non-zero layout.
    unsafe { mimalloc::MiMalloc.alloc(Layout::from_size_align_unchecked(n.max(1), 16)) }.expose_provenance()
}
fn mi_free(p: usize) {
    // SAFETY: `p` came from `mi_alloc` (mimalloc ignores the size).
    unsafe { mimalloc::MiMalloc.dealloc(std::ptr::with_exposed_provenance_mut(p), Layout::new::<u8>()) }
}

const PEERS: [Peer; 3] = [
    Peer { name: "mainmem", alloc: mainmem_alloc, free: mainmem_free },
    Peer { name: "glibc", alloc: glibc_alloc, free: glibc_free },
    Peer { name: "mimalloc", alloc: mi_alloc, free: mi_free },
];

/// `iters` alloc+free pairs of sizes 16..272 on each of `threads` threads; wall time.
fn pairs(peer: Peer, threads: usize, iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut live = [0usize; 8];
                let mut x = 0x9e37_79b9u32.wrapping_mul(t as u32 + 1);
                for i in 0..iters {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let slot = (i % 8) as usize;
                    if live[slot] != 0 {
                        (peer.free)(live[slot]);
                    }
                    let p = (peer.alloc)(16 + (x as usize % 256));
                    black_box(p);
                    live[slot] = p;
                }
                for p in live {
                    if p != 0 {
                        (peer.free)(p);
                    }
                }
            });
        }
    });
    start.elapsed()
}

/// A producer allocates 64-byte objects and sends them; a consumer frees them.
fn producer_consumer(peer: Option<Peer>, iters: u64) -> Duration {
    let (tx, rx) = sync_channel::<usize>(1024);
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for i in 0..iters {
                let p = match peer {
                    Some(peer) => (peer.alloc)(64),
                    None => i as usize + 1,
                };
                tx.send(p).unwrap();
            }
        });
        s.spawn(move || {
            for p in rx {
                if let Some(peer) = peer {
                    (peer.free)(p);
                } else {
                    black_box(p);
                }
            }
        });
    });
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    for threads in [1, 2] {
        let mut g = c.benchmark_group(format!("malloc_pairs_{threads}_threads"));
        g.throughput(Throughput::Elements(threads as u64));
        for peer in PEERS {
            g.bench_function(BenchmarkId::from_parameter(peer.name), |b| {
                b.iter_custom(|iters| pairs(peer, threads, iters))
            });
        }
        g.finish();
    }
    let mut g = c.benchmark_group("malloc_producer_consumer");
    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::from_parameter("channel-alone"), |b| {
        b.iter_custom(|iters| producer_consumer(None, iters))
    });
    for peer in PEERS {
        g.bench_function(BenchmarkId::from_parameter(peer.name), |b| {
            b.iter_custom(|iters| producer_consumer(Some(peer), iters))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
