//! The buffers: a `#[repr(C)]` header followed by the data, laid out like NuttX's
//! `struct iob_s`, all in one zeroed allocation owned by the pool.
//!
//! ```text
//! storage: | header | data (bufsize) | pad | header | data | pad | ...   stride = round_up(
//!            ^ buffer 0                     ^ buffer 1                    HEADER + bufsize,
//!                                                                          align of header)
//! header:  io_flink: *mut IobHeader   next buffer of the chain (null at the end)
//!          io_len: u16                bytes of data in this buffer
//!          io_offset: u16             where the data starts in io_data
//!          io_pktlen: c_uint          the chain's length (kept in the first buffer)
//!          io_data[bufsize]           at offset size_of::<IobHeader>() (16 on 64-bit, 12 on 32)
//! ```
//!
//! The C ABI hands these very buffers to C as `struct iob_s *`.

use std::alloc::Layout;
use std::ffi::c_uint;
use std::ptr::NonNull;

use crate::IobError;

/// The header of every buffer, with the field names and layout of NuttX's `struct iob_s`;
/// `io_data` (the pool's `bufsize` bytes) follows it at `size_of::<IobHeader>()`.
///
/// Rust code reaches buffers through [`Chain`](crate::Chain); the raw layout is public for
/// the C ABI ([`Chain::into_raw`](crate::Chain::into_raw)).
#[repr(C)]
#[derive(Debug)]
pub struct IobHeader {
    /// The next buffer of the chain, null at its end.
    pub io_flink: *mut IobHeader,
    /// Bytes of data in this buffer.
    pub io_len: u16,
    /// Where the data starts in `io_data`.
    pub io_offset: u16,
    /// The whole chain's length; valid in the chain's first buffer.
    pub io_pktlen: c_uint,
}

/// Bytes from a buffer's start to its data (`offsetof(struct iob_s, io_data)`).
pub const HEADER_SIZE: usize = size_of::<IobHeader>();

/// One zeroed allocation holding every buffer of a pool.
pub(crate) struct Storage {
    base: NonNull<u8>,
    layout: Layout,
    stride: usize,
    nbuffers: usize,
}

// SAFETY: `Storage` is a plain heap allocation; who may touch which buffer is decided by the
// pool's free list and the chains, which own their buffers exclusively.
unsafe impl Send for Storage {}
// SAFETY: as above; `&Storage` only computes addresses.
unsafe impl Sync for Storage {}

impl Storage {
    pub(crate) fn new(nbuffers: usize, bufsize: usize) -> Result<Self, IobError> {
        let too_large = IobError::PoolTooLarge { nbuffers, bufsize };
        let align = align_of::<IobHeader>();
        let stride = (HEADER_SIZE + bufsize).next_multiple_of(align);
        let size = stride.checked_mul(nbuffers).ok_or(too_large.clone())?;
        let layout = Layout::from_size_align(size, align).map_err(|_| too_large.clone())?;
        // SAFETY: `size` is non-zero: `nbuffers > 0` was checked and `stride >= HEADER_SIZE`.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let base = NonNull::new(raw).ok_or(too_large)?;
        Ok(Self { base, layout, stride, nbuffers })
    }

    /// Buffer `index` (below `nbuffers`).
    #[inline]
    pub(crate) fn buf(&self, index: u32) -> Buf {
        let index = index as usize;
        assert!(index < self.nbuffers, "buffer index {index} out of range");
        // SAFETY: `index < nbuffers`, so the offset is inside the allocation.
        Buf(unsafe { self.base.add(index * self.stride) }.cast())
    }

    /// The index of the buffer at `ptr`, or `None` when `ptr` is not the start of one.
    pub(crate) fn index_of(&self, ptr: NonNull<IobHeader>) -> Option<u32> {
        let offset = ptr.addr().get().wrapping_sub(self.base.addr().get());
        let index = offset / self.stride;
        (offset % self.stride == 0 && index < self.nbuffers).then_some(index as u32)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, and the pool (the only owner) is gone.
        unsafe { std::alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// A buffer of a live pool's storage.
///
/// Invariant (upheld by the crate, which makes a `Buf` only from [`Storage::buf`] or from a
/// pointer [`Storage::index_of`] accepted): the pointer is the start of a buffer inside
/// storage that outlives every use of the `Buf`, and its holder (a chain, or the pool under
/// its lock) is the only one touching that buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Buf(pub(crate) NonNull<IobHeader>);

impl Buf {
    #[inline]
    fn header(self) -> *mut IobHeader {
        self.0.as_ptr()
    }

    #[inline]
    pub(crate) fn len(self) -> usize {
        // SAFETY: the `Buf` invariant: a live, exclusively held buffer.
        unsafe { (*self.header()).io_len as usize }
    }

    #[inline]
    pub(crate) fn set_len(self, len: usize) {
        debug_assert!(len <= u16::MAX as usize);
        // SAFETY: as in `len`.
        unsafe { (*self.header()).io_len = len as u16 }
    }

    #[inline]
    pub(crate) fn offset(self) -> usize {
        // SAFETY: as in `len`.
        unsafe { (*self.header()).io_offset as usize }
    }

    #[inline]
    pub(crate) fn set_offset(self, offset: usize) {
        debug_assert!(offset <= u16::MAX as usize);
        // SAFETY: as in `len`.
        unsafe { (*self.header()).io_offset = offset as u16 }
    }

    #[inline]
    pub(crate) fn pktlen(self) -> usize {
        // SAFETY: as in `len`.
        unsafe { (*self.header()).io_pktlen as usize }
    }

    #[inline]
    pub(crate) fn set_pktlen(self, pktlen: usize) {
        debug_assert!(pktlen <= c_uint::MAX as usize);
        // SAFETY: as in `len`.
        unsafe { (*self.header()).io_pktlen = pktlen as c_uint }
    }

    #[inline]
    pub(crate) fn next(self) -> Option<Buf> {
        // SAFETY: as in `len`; links are only ever set to other buffers of the same storage.
        NonNull::new(unsafe { (*self.header()).io_flink }).map(Buf)
    }

    #[inline]
    pub(crate) fn set_next(self, next: Option<Buf>) {
        let next = next.map_or(std::ptr::null_mut(), |b| b.0.as_ptr());
        // SAFETY: as in `len`.
        unsafe { (*self.header()).io_flink = next }
    }

    /// A fresh buffer: no link, no data, offset 0, pktlen 0.
    pub(crate) fn reset(self) {
        self.set_next(None);
        self.set_len(0);
        self.set_offset(0);
        self.set_pktlen(0);
    }

    /// The start of `io_data` (`bufsize` bytes, always initialised: the storage is zeroed).
    #[inline]
    pub(crate) fn data(self) -> *mut u8 {
        // SAFETY: the data follows the header inside the same buffer of the allocation.
        unsafe { self.0.cast::<u8>().add(HEADER_SIZE).as_ptr() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_found_by_address_and_foreign_pointers_are_not() {
        let storage = Storage::new(3, 10).unwrap();
        let stride = (HEADER_SIZE + 10).next_multiple_of(align_of::<IobHeader>());
        for i in 0..3 {
            assert_eq!(storage.index_of(storage.buf(i).0), Some(i));
        }
        let inside = NonNull::new(storage.buf(1).data()).unwrap().cast::<IobHeader>();
        assert_eq!(storage.index_of(inside), None);
        let past = NonNull::new(storage.buf(2).0.as_ptr().wrapping_byte_add(stride)).unwrap();
        assert_eq!(storage.index_of(past), None);
        let before = NonNull::new(storage.buf(0).0.as_ptr().wrapping_byte_sub(stride)).unwrap();
        assert_eq!(storage.index_of(before), None);
    }

    #[test]
    fn a_reset_buffer_is_empty_and_unlinked() {
        let storage = Storage::new(2, 8).unwrap();
        let (a, b) = (storage.buf(0), storage.buf(1));
        a.set_next(Some(b));
        a.set_len(3);
        a.set_offset(2);
        a.set_pktlen(9);
        assert_eq!((a.next(), a.len(), a.offset(), a.pktlen()), (Some(b), 3, 2, 9));
        a.reset();
        assert_eq!((a.next(), a.len(), a.offset(), a.pktlen()), (None, 0, 0, 0));
    }
}
