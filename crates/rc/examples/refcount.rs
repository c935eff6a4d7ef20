//! An example that depends on `mempools-rc` alone: the untyped, C-style API (raw object
//! pointers, a pool destructor, reference counts found through the object pointer).
//!
//! `cargo run -p mempools-rc --example refcount`

use std::ptr::NonNull;

use mempools_rc::{add_ref, object_size_of, ref_count, release, RawPool};

#[repr(C)]
struct Message {
    id: u32,
    len: u32,
    body: [u8; 56],
}

fn destroy_message(obj: *mut u8) {
    // SAFETY: the pool's objects are `Message`s written by `main`.
    let msg = unsafe { &*obj.cast::<Message>() };
    println!("destroying message {} ({} bytes)", msg.id, msg.len);
}

fn main() {
    let pool = RawPool::new("example.messages", std::mem::size_of::<Message>()).expect("a valid size");
    pool.expand(4).set_destructor(Some(destroy_message));

    let obj: NonNull<u8> = pool.force_alloc();
    // SAFETY: a fresh object of `size_of::<Message>()` bytes, aligned to 8.
    unsafe { obj.cast::<Message>().as_ptr().write(Message { id: 7, len: 5, body: [0; 56] }) };

    // SAFETY: `obj` is live until its last release below.
    unsafe {
        add_ref(obj); // a second owner
        println!("count {}, object size {}", ref_count(obj), object_size_of(obj));
        release(obj); // the second owner is done
        release(obj); // count 0: destroy_message runs, the block goes back
    }
    let s = pool.stats();
    println!("in use {}, free {}, allocations {}", s.in_use, s.free, s.allocs);
}
