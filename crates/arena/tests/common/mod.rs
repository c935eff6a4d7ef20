//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;

use mempools_arena::Handler;

/// A handler that records prints, logstack calls and moves; panics like the default.
#[derive(Default)]
pub struct Rec {
    pub prints: RefCell<Vec<String>>,
    pub stacks: Cell<usize>,
    pub moves: RefCell<Vec<(usize, usize)>>,
    pub can_move: bool,
    pub locks: Cell<isize>,
}

impl Rec {
    pub fn mover() -> Self {
        Self { can_move: true, ..Self::default() }
    }
}

impl Handler for Rec {
    fn print(&self, _pool: &str, msg: std::fmt::Arguments<'_>) {
        self.prints.borrow_mut().push(msg.to_string());
    }
    fn logstack(&self, _pool: &str) {
        self.stacks.set(self.stacks.get() + 1);
    }
    fn lock(&self) {
        self.locks.set(self.locks.get() + 1);
    }
    fn unlock(&self) {
        self.locks.set(self.locks.get() - 1);
    }
    fn can_move(&self) -> bool {
        self.can_move
    }
    fn moved(&self, from: NonNull<u8>, to: NonNull<u8>) {
        self.moves.borrow_mut().push((from.as_ptr() as usize, to.as_ptr() as usize));
    }
}

/// Views a u128 buffer (16-aligned) as bytes.
pub fn bytes(v: &mut [u128]) -> &mut [u8] {
    let len = v.len() * 16;
    // SAFETY: the buffer is `len` bytes and any byte pattern is a valid u8.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast(), len) }
}

/// The message of a caught panic.
pub fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = e.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = e.downcast_ref::<&str>() {
        (*s).to_string()
    } else {
        String::from("?")
    }
}
