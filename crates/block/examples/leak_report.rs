//! A pool that tracks its callers, a client that leaks, and the report that names the line.
//!
//! `cargo run -p mempools-block --example leak_report`

use mempools_block::PoolBuilder;

fn main() -> Result<(), mempools_block::BlockError> {
    let pool = PoolBuilder::new("example.sessions", 48)
        .track_callers(true)
        .checked(true)
        .guard_bands(8)
        .build_sync()?;
    pool.expand(16);

    // A well-behaved client.
    for _ in 0..4 {
        let block = pool.assert_alloc();
        pool.release(block);
    }
    // A client that forgets to release.
    let leaked: Vec<_> = (0..3).map(|_| pool.force_alloc()).collect();

    println!("{:?}", pool.stats());
    print!("{}", pool.leak_report());
    println!("{}", mempools_stats::render_table(&mempools_stats::registry().snapshot()));

    for block in leaked {
        pool.release(block);
    }
    assert_eq!(pool.leak_report().live(), 0);
    Ok(())
}
