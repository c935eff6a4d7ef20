//! The locked forms under several threads.

use mempools_granule::{GranPool, PageAllocator, SyncGranPool, SyncPageAllocator};

#[test]
fn threads_share_a_granule_pool_without_overlap() {
    let mut region = vec![0u8; 64 * 1024];
    let pool = SyncGranPool::new(GranPool::with_name("granule.threads", &mut region, 6, 6).unwrap());
    let total = pool.info().ngranules;
    let rounds = if cfg!(miri) { 10 } else { 2000 };
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            let pool = &pool;
            scope.spawn(move || {
                let mut live = Vec::new();
                for i in 0..rounds {
                    let size = 1 + (i * 37 + t as usize * 11) % 300;
                    if let Ok(p) = pool.alloc(size) {
                        // SAFETY: the block is ours until we free it.
                        unsafe { p.as_ptr().write_bytes(t, size) };
                        live.push((p, size));
                    }
                    if live.len() > 4 || i % 3 == 0 {
                        if let Some((p, size)) = live.pop() {
                            // SAFETY: as above; another thread writing here would be overlap.
                            let data = unsafe { std::slice::from_raw_parts(p.as_ptr(), size) };
                            assert!(data.iter().all(|&b| b == t), "another thread wrote into our block");
                            pool.free(p, size).unwrap();
                        }
                    }
                }
                for (p, size) in live {
                    pool.free(p, size).unwrap();
                }
            });
        }
    });
    let info = pool.info();
    assert_eq!((info.nfree, info.mxfree), (total, total));
    let stats = mempools_stats::registry().find("granule.threads").unwrap().report();
    assert_eq!(stats.used_blocks, 0);
    assert!(stats.max_used > 0);
    assert_eq!(stats.allocs as usize, rounds * 4);
}

#[test]
fn threads_share_a_page_allocator() {
    let mut region = vec![0u8; 33 * 4096];
    let pages = SyncPageAllocator::new(PageAllocator::new(&mut region).unwrap());
    let total = pages.info().ntotal;
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let pages = &pages;
            scope.spawn(move || {
                for n in 1..if cfg!(miri) { 4 } else { 200 } {
                    let n = n % 8 + 1;
                    let p = pages.alloc_pages(n).unwrap();
                    assert_eq!(p.addr().get() % 4096, 0);
                    pages.free_pages(p, n).unwrap();
                }
            });
        }
    });
    assert_eq!(pages.info().nfree, total);
}
