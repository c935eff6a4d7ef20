//! Two threads: a producer allocates 64-byte objects and sends them through a bounded
//! `std::sync::mpsc::sync_channel`; a consumer frees them. Every object is freed by the other
//! thread. Objects per second (criterion `Throughput::Elements(1)`), with the channel alone
//! (plain integers sent, nothing allocated) as the reference ceiling.
//!
//! Target (DESIGN.md "Performance"): at least mimalloc's objects/s, read from the row
//! "mempools SyncPool + ThreadCache": the producer allocates through its own `pool.cache()`
//! (a refill takes half the magazine, 16 blocks, in one swap of the pool's head) and the
//! consumer releases through its own (a spill gives 16 back in one swap), so the two threads
//! meet on the shared head once per 16 objects instead of on every alloc and release. The
//! uncached "mempools SyncPool" row (both threads compare-and-swap the one head for every
//! object) stays in the table beside it.
//!
//! The clock starts once both threads are running and stops when the consumer has freed the
//! last object, so thread start-up is not measured. Samples are flat (each the same number of
//! objects) so that none is too short to keep both threads busy.
//!
//! `cargo bench -p mempools-benches --bench producer_consumer -- --warm-up-time 1 --measurement-time 2`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::mpsc::sync_channel;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};

const SIZE: usize = 64;
/// Objects in flight at most (the channel's bound).
const BOUND: usize = 1024;
/// Blocks the pools hold: the channel's bound, one object at each end, and what the two
/// threads' caches may hold (the producer's at most half its magazine after a refill, the
/// consumer's a full magazine before it spills).
const BLOCKS: usize = BOUND + 2 + 2 * mempools_block::DEFAULT_CACHE_CAPACITY;

/// One contender: `alloc` on the producer's thread, `free` on the consumer's, each with the
/// per-thread state ([`Contender::Local`]) that thread made for itself.
trait Contender: std::marker::Sync {
    /// What crosses the channel.
    type Object: Send;
    /// Per-thread state (a cache), made by [`Contender::local`] on the thread that uses it
    /// and dropped there when the run ends; `()` for the contenders that have none.
    type Local<'a>
    where
        Self: 'a;
    fn name(&self) -> &'static str;
    fn local(&self) -> Self::Local<'_>;
    fn alloc(&self, local: &mut Self::Local<'_>, i: u64) -> Self::Object;
    fn free(&self, local: &mut Self::Local<'_>, o: Self::Object);
}

/// `iters` objects from producer to consumer; time from both threads ready to the last free
/// (each thread's `Local` is made before the clock starts and dropped after it stops).
fn run<C: Contender>(c: &C, iters: u64) -> Duration {
    let (tx, rx) = sync_channel::<C::Object>(BOUND);
    let ready = Barrier::new(2);
    std::thread::scope(|s| {
        let consumer = s.spawn(|| {
            let mut local = c.local();
            ready.wait();
            for o in rx {
                c.free(&mut local, o);
            }
            let end = Instant::now();
            drop(local);
            end
        });
        let mut local = c.local();
        ready.wait();
        let start = Instant::now();
        for i in 0..iters {
            tx.send(c.alloc(&mut local, i)).unwrap();
        }
        drop(tx);
        let end = consumer.join().unwrap();
        drop(local);
        end - start
    })
}

/// Nothing allocated: the channel's own cost.
struct ChannelAlone;
impl Contender for ChannelAlone {
    type Object = u64;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        "channel alone"
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), i: u64) -> u64 {
        i
    }
    fn free(&self, _: &mut (), o: u64) {
        black_box(o);
    }
}

/// `mempools_block::SyncPool`.
struct Sync(mempools_block::SyncPool);
impl Contender for Sync {
    type Object = mempools_block::Block;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        "mempools SyncPool"
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), _: u64) -> mempools_block::Block {
        self.0.assert_alloc()
    }
    fn free(&self, _: &mut (), o: mempools_block::Block) {
        self.0.release(o)
    }
}

/// `mempools_block::SyncPool` behind one `ThreadCache` per thread: the producer allocates
/// through its own cache (a refill takes 16 blocks in one swap of the head), the consumer
/// releases through its own (a spill gives 16 back in one swap). Blocks move from the
/// consumer's cache to the producer's through the pool.
struct SyncCached(mempools_block::SyncPool);
impl Contender for SyncCached {
    type Object = mempools_block::Block;
    type Local<'a> = mempools_block::ThreadCache<'a>;
    fn name(&self) -> &'static str {
        "mempools SyncPool + ThreadCache"
    }
    fn local(&self) -> mempools_block::ThreadCache<'_> {
        self.0.cache()
    }
    fn alloc(&self, cache: &mut mempools_block::ThreadCache<'_>, _: u64) -> mempools_block::Block {
        cache.assert_alloc()
    }
    fn free(&self, cache: &mut mempools_block::ThreadCache<'_>, o: mempools_block::Block) {
        cache.release(o)
    }
}

/// `mempools_rc::Pool<[u64; 8]>` giving `PoolBox`es (dropped on the consumer's thread).
struct RcBox(mempools_rc::Pool<[u64; 8]>);
impl Contender for RcBox {
    type Object = mempools_rc::PoolBox<[u64; 8]>;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        "mempools rc PoolBox"
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), i: u64) -> Self::Object {
        self.0.assert_alloc([i; 8])
    }
    fn free(&self, _: &mut (), o: Self::Object) {
        drop(o)
    }
}

/// A pointer that crosses the channel.
struct Sent(NonNull<u8>);
// SAFETY: the block is owned by whoever holds the `Sent`; the allocators below may be freed
// from any thread.
unsafe impl Send for Sent {}

/// `mempools_arena::mainmem` (the process malloc, with its per-thread caches).
struct MainMem;
impl Contender for MainMem {
    type Object = Sent;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        "mempools mainmem malloc"
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), _: u64) -> Sent {
        Sent(mempools_arena::mainmem::malloc(SIZE).expect("out of memory"))
    }
    fn free(&self, _: &mut (), o: Sent) {
        // SAFETY: `o.0` came from `mainmem::malloc` and is freed once.
        unsafe { mempools_arena::mainmem::free(o.0) }
    }
}

/// A `GlobalAlloc` (glibc through `System`, mimalloc through `MiMalloc`).
struct Global<A: GlobalAlloc + 'static>(&'static A, &'static str);
impl<A: GlobalAlloc + std::marker::Sync> Contender for Global<A> {
    type Object = Sent;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        self.1
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), _: u64) -> Sent {
        // SAFETY: a non-zero-size layout.
        Sent(NonNull::new(unsafe { self.0.alloc(Layout::new::<[u64; 8]>()) }).expect("out of memory"))
    }
    fn free(&self, _: &mut (), o: Sent) {
        // SAFETY: `o.0` came from `alloc` of this allocator with this layout.
        unsafe { self.0.dealloc(o.0.as_ptr(), Layout::new::<[u64; 8]>()) }
    }
}
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `lockfree_object_pool::LinearObjectPool` (leaked, so its objects can cross threads as
/// `'static` borrows), objects returned from the consumer's thread.
struct LockFree(&'static lockfree_object_pool::LinearObjectPool<[u64; 8]>);
impl Contender for LockFree {
    type Object = lockfree_object_pool::LinearReusable<'static, [u64; 8]>;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        "lockfree-object-pool"
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), _: u64) -> Self::Object {
        self.0.pull()
    }
    fn free(&self, _: &mut (), o: Self::Object) {
        drop(o)
    }
}

/// `sharded_slab::Slab`: the producer inserts, the consumer removes by key.
struct ShardedSlab(sharded_slab::Slab<[u64; 8]>);
impl Contender for ShardedSlab {
    type Object = usize;
    type Local<'a> = ();
    fn name(&self) -> &'static str {
        "sharded-slab"
    }
    fn local(&self) {}
    fn alloc(&self, _: &mut (), i: u64) -> usize {
        self.0.insert([i; 8]).expect("slab full")
    }
    fn free(&self, _: &mut (), key: usize) {
        self.0.remove(key);
    }
}

fn one<C: Contender>(g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>, c: &C) {
    g.bench_function(BenchmarkId::from_parameter(c.name()), |b| b.iter_custom(|iters| run(c, iters)));
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("producer-consumer 64 B, 2 threads");
    g.throughput(Throughput::Elements(1));
    // Every sample the same, long run of objects (flat sampling): short runs are dominated by
    // the two threads finding each other, and the report takes the median of the samples.
    g.sampling_mode(SamplingMode::Flat).sample_size(20);

    let sync = mempools_block::SyncPool::new("bench.pc.sync", SIZE).unwrap();
    sync.expand(BLOCKS);
    one(&mut g, &Sync(sync));
    let cached = mempools_block::SyncPool::new("bench.pc.cached", SIZE).unwrap();
    cached.expand(BLOCKS);
    one(&mut g, &SyncCached(cached));
    let rc = mempools_rc::Pool::new("bench.pc.rcbox");
    rc.expand(BLOCKS);
    one(&mut g, &RcBox(rc));
    one(&mut g, &MainMem);
    one(&mut g, &ChannelAlone);
    one(&mut g, &Global(&System, "glibc"));
    one(&mut g, &Global(&MIMALLOC, "mimalloc"));
    let lockfree = Box::leak(Box::new(lockfree_object_pool::LinearObjectPool::new(|| [0u64; 8], |_| {})));
    one(&mut g, &LockFree(lockfree));
    one(&mut g, &ShardedSlab(sharded_slab::Slab::new()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
