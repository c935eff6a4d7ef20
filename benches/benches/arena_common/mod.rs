//! Shared by the arena benchmarks: one seeded operation sequence, and every allocator behind
//! one small trait so they all run exactly the same actions.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ptr::NonNull;

/// A small xorshift generator: the same seeded sequence for every allocator.
pub struct XorShift(pub u64);

impl XorShift {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

/// One step of a random-action program: free the block in `slot`, or allocate `size` into it.
#[derive(Clone, Copy)]
pub struct Action {
    pub slot: u32,
    pub size: u32,
}

/// `n` actions over `slots` slots with sizes in `lo..hi`: each action picks a slot; an
/// occupied slot is freed, an empty one filled (so about `slots / 2` blocks are live).
pub fn program(seed: u64, n: usize, slots: usize, lo: usize, hi: usize) -> Vec<Action> {
    let mut r = XorShift(seed);
    (0..n)
        .map(|_| Action {
            slot: (r.next() % slots as u64) as u32,
            size: (lo + (r.next() as usize) % (hi - lo)) as u32,
        })
        .collect()
}

/// An allocator under test.
pub trait Arena {
    fn name(&self) -> &'static str;
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>>;
    /// # Safety
    /// `p` came from `alloc(size)` on this allocator.
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize);
}

const ALIGN: usize = 8;

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size.max(1), ALIGN).unwrap()
}

/// A leaked, 4 KiB-aligned region of `len` bytes.
pub fn region(len: usize) -> &'static mut [u8] {
    let l = Layout::from_size_align(len, 4096).unwrap();
    // SAFETY: non-zero layout; the memory is leaked for the bench's life.
    unsafe {
        let p = std::alloc::alloc_zeroed(l);
        std::slice::from_raw_parts_mut(p, len)
    }
}

pub struct OursTlsf(pub mempools_arena::Tlsf);
impl OursTlsf {
    pub fn new(len: usize) -> Self {
        let r = region(len);
        let mut t = mempools_arena::Tlsf::new();
        // SAFETY: a leaked region, used by nothing else.
        unsafe { t.add_region(NonNull::new(r.as_mut_ptr()).unwrap(), len, 0) }.unwrap();
        Self(t)
    }
}
impl Arena for OursTlsf {
    fn name(&self) -> &'static str {
        "mempools-tlsf"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.0.alloc(size)
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, _size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.free(p) };
    }
}

pub struct OursHeap(pub mempools_arena::Heap<'static>);
impl OursHeap {
    pub fn new(len: usize) -> Self {
        Self(mempools_arena::Heap::new("bench.heap", region(len)).unwrap())
    }
}
impl Arena for OursHeap {
    fn name(&self) -> &'static str {
        "mempools-heap (locked)"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.0.malloc(size)
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, _size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.free(Some(p)) };
    }
}

pub struct OursPool(pub mempools_arena::Pool<mempools_core::RegionSource<'static>>);
impl OursPool {
    pub fn new(len: usize) -> Self {
        let cfg = mempools_arena::PoolConfig::new("bench.pool").minarena(len - 4096);
        Self(mempools_arena::Pool::new(cfg, mempools_core::RegionSource::new(region(len))).unwrap())
    }
}
impl Arena for OursPool {
    fn name(&self) -> &'static str {
        "mempools-plan9-pool"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.0.alloc(size)
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, _size: usize) {
        self.0.free(Some(p));
    }
}

pub struct Rlsf(pub rlsf::Tlsf<'static, u32, u32, 28, 32>);
impl Rlsf {
    pub fn new(len: usize) -> Self {
        let mut t = rlsf::Tlsf::new();
        let r = region(len);
        // SAFETY: a leaked region (MaybeUninit view of it).
        let r: &'static mut [std::mem::MaybeUninit<u8>] = unsafe { std::mem::transmute(r) };
        t.insert_free_block(r);
        Self(t)
    }
}
impl Arena for Rlsf {
    fn name(&self) -> &'static str {
        "rlsf"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.0.allocate(layout(size))
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, _size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.deallocate(p, ALIGN) };
    }
}

pub struct Talc(pub talc::Talc<talc::ErrOnOom>);
impl Talc {
    pub fn new(len: usize) -> Self {
        let mut t = talc::Talc::new(talc::ErrOnOom);
        let r = region(len);
        // SAFETY: a leaked region.
        unsafe { t.claim(talc::Span::from(&*r)).unwrap() };
        Self(t)
    }
}
impl Arena for Talc {
    fn name(&self) -> &'static str {
        "talc"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: a valid layout.
        unsafe { self.0.malloc(layout(size)) }.ok()
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.free(p, layout(size)) };
    }
}

pub struct LinkedList(pub linked_list_allocator::Heap);
impl LinkedList {
    pub fn new(len: usize) -> Self {
        let r = region(len);
        // SAFETY: a leaked region.
        Self(unsafe { linked_list_allocator::Heap::new(r.as_mut_ptr(), len) })
    }
}
impl Arena for LinkedList {
    fn name(&self) -> &'static str {
        "linked_list_allocator"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.0.allocate_first_fit(layout(size)).ok()
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.deallocate(p, layout(size)) };
    }
}

pub struct Buddy(pub buddy_system_allocator::Heap<32>);
impl Buddy {
    pub fn new(len: usize) -> Self {
        let mut h = buddy_system_allocator::Heap::<32>::new();
        let r = region(len);
        let start = r.as_mut_ptr() as usize;
        // SAFETY: a leaked region.
        unsafe { h.add_to_heap(start, start + len) };
        Self(h)
    }
}
impl Arena for Buddy {
    fn name(&self) -> &'static str {
        "buddy_system_allocator"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        self.0.alloc(layout(size)).ok()
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize) {
        self.0.dealloc(p, layout(size));
    }
}

pub struct Dl(pub dlmalloc::Dlmalloc);
impl Arena for Dl {
    fn name(&self) -> &'static str {
        "dlmalloc"
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: valid size and alignment.
        NonNull::new(unsafe { self.0.malloc(size.max(1), ALIGN) })
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.free(p.as_ptr(), size.max(1), ALIGN) };
    }
}

pub struct Global<G: GlobalAlloc + 'static>(pub &'static G, pub &'static str);
impl<G: GlobalAlloc> Arena for Global<G> {
    fn name(&self) -> &'static str {
        self.1
    }
    #[inline]
    fn alloc(&mut self, size: usize) -> Option<NonNull<u8>> {
        // SAFETY: a non-zero layout.
        NonNull::new(unsafe { self.0.alloc(layout(size)) })
    }
    #[inline]
    unsafe fn free(&mut self, p: NonNull<u8>, size: usize) {
        // SAFETY: forwarded.
        unsafe { self.0.dealloc(p.as_ptr(), layout(size)) };
    }
}

pub static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
pub static SYSTEM: std::alloc::System = std::alloc::System;

/// Every allocator over a region of `len` bytes (the global ones ignore it).
pub fn all(len: usize) -> Vec<Box<dyn Arena>> {
    vec![
        Box::new(OursTlsf::new(len)),
        Box::new(OursHeap::new(len)),
        Box::new(OursPool::new(len)),
        Box::new(Rlsf::new(len)),
        Box::new(Talc::new(len)),
        Box::new(LinkedList::new(len)),
        Box::new(Buddy::new(len)),
        Box::new(Dl(dlmalloc::Dlmalloc::new())),
        Box::new(Global(&SYSTEM, "glibc")),
        Box::new(Global(&MIMALLOC, "mimalloc")),
    ]
}

/// Runs `actions` on `a` with `slots` slots, writing one byte per block; frees what is left.
#[inline(never)]
pub fn run(a: &mut dyn Arena, actions: &[Action], slots: &mut [Option<(NonNull<u8>, usize)>]) {
    for act in actions {
        let s = &mut slots[act.slot as usize];
        match s.take() {
            // SAFETY: the block came from `a.alloc(size)`.
            Some((p, size)) => unsafe { a.free(p, size) },
            None => {
                let size = act.size as usize;
                if let Some(p) = a.alloc(size) {
                    // SAFETY: at least `size >= 1` bytes.
                    unsafe { p.as_ptr().write(1) };
                    *s = Some((p, size));
                }
            }
        }
    }
}

/// Frees every block still in `slots`.
pub fn drain(a: &mut dyn Arena, slots: &mut [Option<(NonNull<u8>, usize)>]) {
    for s in slots.iter_mut() {
        if let Some((p, size)) = s.take() {
            // SAFETY: the block came from `a.alloc(size)`.
            unsafe { a.free(p, size) };
        }
    }
}
