//! The "Point" pool of the Legato documentation: create a pool, expand it, allocate, add a
//! reference, a destructor, statistics.
//!
//! `cargo run -p mempools --example point`

use mempools::prelude::*;

/// Maximum number of points that can be handled.
const MAX_POINTS: usize = 12;

/// A pixel position.
struct Point {
    x: i32,
    y: i32,
}

/// The destructor: `Point`'s `Drop` runs when the last reference is released.
impl Drop for Point {
    fn drop(&mut self) {
        println!("Destroying point ({}, {})", self.x, self.y);
    }
}

fn delete_point_list(points: Vec<PoolRc<Point>>) {
    for p in points {
        drop(p); // release: count 1 -> 0, the destructor runs
    }
}

fn main() {
    // le_mem_CreatePool + le_mem_ExpandPool (expand returns the pool, so calls chain).
    let point_pool: Pool<Point> = Pool::new("xx.pt.Points");
    point_pool.expand(MAX_POINTS);

    // ForceAlloc: never fails (the pool grows and warns if it has to).
    let first = point_pool.force_alloc_rc(Point { x: 5, y: 10 });
    println!("Point is at position ({}, {}).", first.x, first.y);

    // Reference counting: hand a second reference to someone else.
    let other = first.clone();
    println!("reference count: {}", PoolRc::ref_count(&first));
    drop(first); // our reference
    println!("still alive at ({}, {}) through the other reference", other.x, other.y);

    let list: Vec<_> = (0..4).map(|i| point_pool.force_alloc_rc(Point { x: i, y: -i })).collect();
    let s = point_pool.stats();
    println!("in use {}, free {}, allocations {}, overflows {}", s.in_use, s.free, s.allocs, s.overflows);

    delete_point_list(list);
    drop(other);

    // Statistics, as le_mem_GetStats and the poolstat table show them.
    let s = point_pool.stats();
    assert_eq!((s.in_use, s.total, s.allocs, s.max_used), (0, MAX_POINTS, 5, 5));
    let report = registry().find("xx.pt.Points").expect("registered").report();
    print!("{}", mempools::stats::render_table(&[report]));
}
