//! Chains of buffers and the NuttX operations on them.

use alloc::sync::Arc;
use std::ptr::{self, NonNull};

use crate::buffer::Buf;
use crate::pool::Inner;
use crate::{IobError, IobHeader, IobPool};

/// A packet: a list of buffers of one pool, owned by the chain, with the packet length kept
/// in the first buffer's `io_pktlen` (and always equal to the sum of the buffers' `io_len`).
///
/// Dropping the chain returns every buffer to the pool. A chain may hold no buffer at all
/// (what [`Chain::trim_tail`] leaves when it trims everything, and [`IobPool::chain`] makes):
/// copying data in takes buffers again.
///
/// The operations have NuttX's meanings (see the crate docs and `iob.h` in the C ABI spec).
///
/// ```
/// use mempools_iob::IobPool;
///
/// let pool = IobPool::new("doc.chain", 8, 16, 0).unwrap();
/// let mut c = pool.chain();
/// c.copy_in(b"hello, world! hello again", 0, false).unwrap();
/// c.trim_head(7);
/// c.trim_tail(12);
/// let mut out = [0u8; 6];
/// assert_eq!(c.copy_out(&mut out, 0).unwrap(), 6);
/// assert_eq!(&out, b"world!");
/// c.pack();
/// assert_eq!((c.buffer_count(), c.buffers().next().unwrap().offset()), (1, 0));
/// ```
pub struct Chain {
    pool: Arc<Inner>,
    head: Option<Buf>,
    tail: Option<Buf>,
    count: usize,
}

// SAFETY: a chain owns its buffers exclusively; moving it to another thread moves that
// ownership (the pool behind the `Arc` is `Sync`).
unsafe impl Send for Chain {}
// SAFETY: `&Chain` only reads its own buffers.
unsafe impl Sync for Chain {}

/// A look at one buffer of a chain.
#[derive(Clone, Copy, Debug)]
pub struct IobRef<'a> {
    buf: Buf,
    bufsize: usize,
    _chain: std::marker::PhantomData<&'a Chain>,
}

impl<'a> IobRef<'a> {
    /// Bytes of data in this buffer (`io_len`).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether the buffer holds no data.
    pub fn is_empty(&self) -> bool {
        self.buf.len() == 0
    }

    /// Where the data starts (`io_offset`).
    pub fn offset(&self) -> usize {
        self.buf.offset()
    }

    /// The data: `len` bytes from `offset`.
    pub fn data(&self) -> &'a [u8] {
        // SAFETY: `offset + len <= bufsize` (every operation keeps it), the storage is
        // initialised, and the chain is borrowed for `'a`, so no one writes the buffer.
        unsafe { std::slice::from_raw_parts(self.buf.data().add(self.buf.offset()), self.buf.len()) }
    }

    /// The whole `io_data` area, `bufsize` bytes, data or not.
    pub fn raw(&self) -> &'a [u8] {
        // SAFETY: as in `data`, over the whole data area.
        unsafe { std::slice::from_raw_parts(self.buf.data(), self.bufsize) }
    }

    /// The buffer's header, as C sees it.
    pub fn as_ptr(&self) -> NonNull<IobHeader> {
        self.buf.0
    }
}

impl Chain {
    pub(crate) fn empty(pool: Arc<Inner>) -> Self {
        Self { pool, head: None, tail: None, count: 0 }
    }

    pub(crate) fn single(pool: Arc<Inner>, index: u32) -> Self {
        let buf = pool.storage.buf(index);
        Self { pool, head: Some(buf), tail: Some(buf), count: 1 }
    }

    fn bufsize(&self) -> usize {
        self.pool.bufsize()
    }

    /// The packet length (`io_pktlen` of the first buffer; 0 without buffers).
    pub fn pktlen(&self) -> usize {
        self.head.map_or(0, |h| h.pktlen())
    }

    /// The bytes in the chain: the same as [`Chain::pktlen`].
    pub fn len(&self) -> usize {
        self.pktlen()
    }

    /// Whether the chain holds no data.
    pub fn is_empty(&self) -> bool {
        self.pktlen() == 0
    }

    /// Buffers in the chain.
    pub fn buffer_count(&self) -> usize {
        self.count
    }

    /// Whether `pool` is the pool this chain's buffers come from.
    pub fn is_from(&self, pool: &IobPool) -> bool {
        Arc::ptr_eq(&self.pool, &pool.inner)
    }

    /// The buffers, first to last.
    pub fn buffers(&self) -> impl Iterator<Item = IobRef<'_>> + '_ {
        let bufsize = self.bufsize();
        std::iter::successors(self.head, |b| b.next()).map(move |buf| IobRef {
            buf,
            bufsize,
            _chain: std::marker::PhantomData,
        })
    }

    fn set_pktlen(&self, pktlen: usize) {
        if let Some(head) = self.head {
            head.set_pktlen(pktlen);
        }
    }

    fn push_buf(&mut self, buf: Buf) {
        match self.tail {
            Some(tail) => tail.set_next(Some(buf)),
            None => self.head = Some(buf),
        }
        self.tail = Some(buf);
        self.count += 1;
    }

    /// Returns `first` and every buffer after it to the pool.
    fn release_from(&self, first: Option<Buf>) {
        let pool = &self.pool;
        pool.release(
            &std::iter::successors(first, |b| b.next()).map(|b| pool.index_of(b)).collect::<Vec<_>>(),
        );
    }

    /// Copies `src` into the chain at byte `offset` (at most [`Chain::pktlen`]), overwriting
    /// what is there and growing the chain past its end: the last buffer is filled up to
    /// `bufsize` before buffers are added, waiting for them as [`IobPool::alloc`] does.
    /// Returns `src.len()`.
    ///
    /// # Errors
    ///
    /// [`IobError::OffsetPastEnd`] (C: `-ESPIPE`); [`IobError::ExceedsPool`] when the chain
    /// would need more buffers than the pool has (or than throttled users may have), which
    /// would wait forever. Nothing is copied on error.
    pub fn copy_in(&mut self, src: &[u8], offset: usize, throttled: bool) -> Result<usize, IobError> {
        self.check_offset(offset)?;
        let needed = self.buffers_needed(offset, src.len());
        let limit = self.pool.nbuffers() - if throttled { self.pool.throttle() } else { 0 };
        if self.count + needed > limit.max(self.count) {
            return Err(IobError::ExceedsPool { needed: self.count + needed, nbuffers: limit });
        }
        self.copy_in_with(src, offset, throttled, true)
    }

    /// Like [`Chain::copy_in`] but without waiting: when no buffer is free it stops with
    /// [`IobError::NoBuffer`] (C: `-ENOMEM`), and the bytes copied so far stay in the chain,
    /// counted by `pktlen`.
    ///
    /// # Errors
    ///
    /// [`IobError::OffsetPastEnd`], [`IobError::NoBuffer`].
    pub fn try_copy_in(&mut self, src: &[u8], offset: usize, throttled: bool) -> Result<usize, IobError> {
        self.check_offset(offset)?;
        self.copy_in_with(src, offset, throttled, false)
    }

    fn check_offset(&self, offset: usize) -> Result<(), IobError> {
        let pktlen = self.pktlen();
        if offset > pktlen {
            return Err(IobError::OffsetPastEnd { offset, pktlen });
        }
        Ok(())
    }

    /// Buffers to add to hold `len` bytes at `offset`.
    fn buffers_needed(&self, offset: usize, len: usize) -> usize {
        let end = offset.saturating_add(len);
        let room = self.pktlen() + self.tail.map_or(0, |t| self.bufsize() - t.offset() - t.len());
        end.saturating_sub(room).div_ceil(self.bufsize())
    }

    /// The copy of `copy_in` (`wait`) and `try_copy_in`. The buffers to add are taken in one
    /// batch of those free now; when `wait`, the rest one by one as they are freed.
    fn copy_in_with(
        &mut self,
        mut src: &[u8],
        offset: usize,
        throttled: bool,
        wait: bool,
    ) -> Result<usize, IobError> {
        let mut batch = self.pool.take_now(throttled, self.buffers_needed(offset, src.len()));
        batch.reverse();
        let total = src.len();
        let old_pktlen = self.pktlen();
        let mut at = offset;
        // Over the buffers that exist: overwrite, and extend the last one.
        let mut pos = 0;
        let mut cur = self.head;
        while let Some(buf) = cur {
            if src.is_empty() {
                break;
            }
            let len = buf.len();
            let last = Some(buf) == self.tail;
            if at < pos + len || last {
                let start = at - pos;
                let room = if last { self.bufsize() - buf.offset() } else { len };
                let n = src.len().min(room - start);
                // SAFETY: `offset + start + n <= bufsize`, the buffer is ours, and `src` is
                // not inside the pool's storage (it is borrowed while the chain is `&mut`).
                unsafe { ptr::copy_nonoverlapping(src.as_ptr(), buf.data().add(buf.offset() + start), n) };
                if last {
                    buf.set_len(len.max(start + n));
                }
                src = &src[n..];
                at += n;
            }
            pos += len;
            cur = buf.next();
        }
        // New buffers past the end.
        let mut result = Ok(total);
        while !src.is_empty() {
            let next = batch.pop().or_else(|| if wait { self.pool.take(throttled, None) } else { None });
            let Some(index) = next else {
                result = Err(IobError::NoBuffer);
                break;
            };
            let buf = self.pool.storage.buf(index);
            let n = src.len().min(self.bufsize());
            // SAFETY: `n <= bufsize`; the fresh buffer is ours.
            unsafe { ptr::copy_nonoverlapping(src.as_ptr(), buf.data(), n) };
            buf.set_len(n);
            self.push_buf(buf);
            src = &src[n..];
            at += n;
        }
        debug_assert!(batch.is_empty(), "buffers_needed counted right");
        self.pool.release(&batch);
        self.set_pktlen(old_pktlen.max(at));
        result
    }

    /// Copies bytes from byte `offset` into `dst`; returns how many (fewer than `dst.len()`
    /// when the chain ends first).
    ///
    /// # Errors
    ///
    /// [`IobError::OffsetPastEnd`] when `offset > pktlen` (C: `-ESPIPE`).
    pub fn copy_out(&self, dst: &mut [u8], offset: usize) -> Result<usize, IobError> {
        self.check_offset(offset)?;
        let mut skip = offset;
        let mut done = 0;
        for b in self.buffers() {
            if done == dst.len() {
                break;
            }
            let data = b.data();
            if skip >= data.len() {
                skip -= data.len();
                continue;
            }
            let n = (data.len() - skip).min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&data[skip..skip + n]);
            done += n;
            skip = 0;
        }
        Ok(done)
    }

    /// Appends `other`'s buffers; the packet length becomes the sum.
    ///
    /// # Panics
    ///
    /// When `other` comes from another pool.
    pub fn concat(&mut self, mut other: Chain) {
        assert!(Arc::ptr_eq(&self.pool, &other.pool), "concat of chains from two pools");
        let Some(other_head) = other.head.take() else { return };
        let pktlen = self.pktlen() + other_head.pktlen();
        match self.tail {
            Some(tail) => tail.set_next(Some(other_head)),
            None => self.head = Some(other_head),
        }
        self.tail = other.tail.take();
        self.count += std::mem::take(&mut other.count);
        self.set_pktlen(pktlen);
    }

    /// Removes `n` bytes from the front (all of them when `n >= pktlen`): the first buffer's
    /// offset advances, data never moves, emptied buffers go back to the pool, and when
    /// everything goes the last buffer stays, empty.
    pub fn trim_head(&mut self, n: usize) {
        let pktlen = self.pktlen();
        let mut n = n.min(pktlen);
        let new_pktlen = pktlen - n;
        while n > 0 {
            let head = self.head.expect("data left means buffers left");
            let len = head.len();
            if n < len || Some(head) == self.tail {
                let cut = n.min(len);
                head.set_offset(head.offset() + cut);
                head.set_len(len - cut);
                break;
            }
            n -= len;
            self.head = head.next();
            head.set_next(None);
            self.count -= 1;
            self.pool.release(&[self.pool.index_of(head)]);
        }
        self.set_pktlen(new_pktlen);
    }

    /// Removes `n` bytes from the end: the tail buffers get shorter and emptied ones go back
    /// to the pool. When `0 < n` and `n >= pktlen` every buffer goes and the chain is left
    /// without any (C: `iob_trimtail` returns NULL); `n == 0` changes nothing.
    pub fn trim_tail(&mut self, n: usize) {
        let pktlen = self.pktlen();
        if n == 0 {
            return;
        }
        if n >= pktlen {
            self.clear();
            return;
        }
        let keep = pktlen - n;
        let mut pos = 0;
        let mut cur = self.head.expect("pktlen > 0");
        let mut count = 1;
        while pos + cur.len() < keep {
            pos += cur.len();
            cur = cur.next().expect("pktlen is the sum of the lengths");
            count += 1;
        }
        cur.set_len(keep - pos);
        let rest = cur.next();
        cur.set_next(None);
        self.release_from(rest);
        self.tail = Some(cur);
        self.count = count;
        self.set_pktlen(keep);
    }

    /// Gives every buffer back; the chain is left without any.
    pub fn clear(&mut self) {
        let head = self.head.take();
        self.tail = None;
        self.count = 0;
        self.release_from(head);
    }

    /// Moves the data to the front: the first buffer's data at offset 0, every buffer but the
    /// last full, emptied buffers back to the pool. At least one buffer stays (an all-empty
    /// chain packs to one empty buffer); `pktlen` does not change.
    pub fn pack(&mut self) {
        let Some(head) = self.head else { return };
        let bufsize = self.bufsize();
        let (mut wbuf, mut wpos) = (head, 0usize);
        let mut read = Some(head);
        // The write position (in buffer capacity) never passes the read position, so no byte
        // is overwritten before it is read.
        while let Some(rbuf) = read {
            let (mut roff, mut rlen) = (rbuf.offset(), rbuf.len());
            let next = rbuf.next();
            while rlen > 0 {
                if wpos == bufsize {
                    wbuf.set_offset(0);
                    wbuf.set_len(bufsize);
                    wbuf = wbuf.next().expect("the writer is behind the reader");
                    wpos = 0;
                }
                let n = rlen.min(bufsize - wpos);
                // SAFETY: both ranges lie inside their buffers' data; `ptr::copy` allows the
                // overlap of moving data down inside one buffer.
                unsafe { ptr::copy(rbuf.data().add(roff), wbuf.data().add(wpos), n) };
                roff += n;
                rlen -= n;
                wpos += n;
            }
            read = next;
        }
        wbuf.set_offset(0);
        wbuf.set_len(wpos);
        let rest = wbuf.next();
        wbuf.set_next(None);
        let freed = std::iter::successors(rest, |b| b.next()).count();
        self.release_from(rest);
        self.tail = Some(wbuf);
        self.count -= freed;
    }

    /// Sets the packet length to `pktlen`: shorter trims the tail ([`Chain::trim_tail`];
    /// at 0 the first buffer stays, empty, so a C caller's head pointer stays valid); longer extends the last buffer up to `bufsize`
    /// and adds free buffers (unthrottled, without waiting). The bytes a longer length
    /// exposes are whatever the buffers hold (zero for never-used storage).
    ///
    /// # Errors
    ///
    /// [`IobError::NoBuffer`] when the buffers to grow cannot all be had now (nothing
    /// changes).
    pub fn update_pktlen(&mut self, pktlen: usize) -> Result<(), IobError> {
        let old = self.pktlen();
        if pktlen <= old {
            if pktlen == 0 {
                self.truncate_to_head();
            } else {
                self.trim_tail(old - pktlen);
            }
            return Ok(());
        }
        let needed = self.buffers_needed(old, pktlen - old);
        let mut fresh = Vec::with_capacity(needed);
        for _ in 0..needed {
            match self.pool.take(false, Some(std::time::Duration::ZERO)) {
                Some(index) => fresh.push(index),
                None => {
                    self.pool.release(&fresh);
                    return Err(IobError::NoBuffer);
                }
            }
        }
        let mut grow = pktlen - old;
        if let Some(tail) = self.tail {
            let n = grow.min(self.bufsize() - tail.offset() - tail.len());
            tail.set_len(tail.len() + n);
            grow -= n;
        }
        for index in fresh {
            let buf = self.pool.storage.buf(index);
            let n = grow.min(self.bufsize());
            buf.set_len(n);
            grow -= n;
            self.push_buf(buf);
        }
        self.set_pktlen(pktlen);
        Ok(())
    }

    /// Empties the chain but keeps its first buffer (at its offset, `len` 0): C's
    /// `iob_update_pktlen(iob, 0)` returns nothing, so the head the caller holds must stay.
    fn truncate_to_head(&mut self) {
        let Some(head) = self.head else { return };
        let rest = head.next();
        head.set_next(None);
        head.set_len(0);
        let freed = self.count - 1;
        self.release_from(rest);
        self.tail = Some(head);
        self.count -= freed;
        self.set_pktlen(0);
    }

    /// Moves the start of the first buffer's data to offset `reserved` (NuttX `iob_reserve`):
    /// a larger offset drops the bytes it passes, a smaller one exposes the buffer's earlier
    /// bytes again; `len` and `pktlen` change by the difference and `len` never goes below 0.
    ///
    /// # Errors
    ///
    /// [`IobError::ReserveTooLarge`] past `bufsize`, [`IobError::EmptyChain`] without buffers.
    pub fn reserve(&mut self, reserved: usize) -> Result<(), IobError> {
        let head = self.head.ok_or(IobError::EmptyChain)?;
        if reserved > self.bufsize() {
            return Err(IobError::ReserveTooLarge { reserved, bufsize: self.bufsize() });
        }
        let (offset, len, pktlen) = (head.offset(), head.len(), head.pktlen());
        if reserved >= offset {
            let dropped = (reserved - offset).min(len);
            head.set_len(len - dropped);
            head.set_pktlen(pktlen - dropped);
        } else {
            let exposed = offset - reserved;
            head.set_len(len + exposed);
            head.set_pktlen(pktlen + exposed);
        }
        head.set_offset(reserved);
        Ok(())
    }

    /// Frees the first buffer alone (NuttX `iob_free`): the next buffer becomes the first and
    /// is handed `pktlen − len`. Without buffers, does nothing.
    pub fn free_head(&mut self) {
        let Some(head) = self.head else { return };
        let rest = head.pktlen() - head.len();
        self.head = head.next();
        head.set_next(None);
        if self.head.is_none() {
            self.tail = None;
        }
        self.count -= 1;
        self.set_pktlen(rest);
        self.pool.release(&[self.pool.index_of(head)]);
    }

    /// Gives up ownership of the buffers: the first buffer's header (linked through
    /// `io_flink`), or `None` for a chain without buffers. [`Chain::from_raw`] takes it back.
    pub fn into_raw(mut self) -> Option<NonNull<IobHeader>> {
        // Emptied, the chain drops without releasing a buffer (and drops its pool reference).
        self.tail = None;
        self.count = 0;
        self.head.take().map(|b| b.0)
    }

    /// Takes back a chain given up by [`Chain::into_raw`] (or linked from such buffers).
    ///
    /// # Safety
    ///
    /// - `head` and every buffer reached through `io_flink` are buffers of `pool` that the
    ///   caller owns (from [`Chain::into_raw`]) and gives up now;
    /// - the list ends (no cycle), holds no buffer twice, and every header keeps
    ///   `io_offset + io_len <= bufsize`;
    /// - `io_pktlen` of `head` is the sum of the `io_len`s.
    ///
    /// # Errors
    ///
    /// [`IobError::ForeignBuffer`] when a buffer is not one of `pool`'s (nothing is taken).
    pub unsafe fn from_raw(pool: &IobPool, head: NonNull<IobHeader>) -> Result<Chain, IobError> {
        let mut chain = Chain::empty(pool.inner.clone());
        let mut cur = Some(head);
        let mut bufs = Vec::new();
        while let Some(ptr) = cur {
            let buf = pool.inner.buf_at(ptr).ok_or(IobError::ForeignBuffer { addr: ptr.addr().get() })?;
            bufs.push(buf);
            cur = buf.next().map(|b| b.0);
        }
        chain.head = bufs.first().copied();
        chain.tail = bufs.last().copied();
        chain.count = bufs.len();
        Ok(chain)
    }

    /// The last buffer's unused room and the data pointer there (for vectored reads).
    pub(crate) fn tail_room(&self) -> Option<(Buf, usize)> {
        self.tail.map(|t| (t, self.bufsize() - t.offset() - t.len()))
    }

    pub(crate) fn pool(&self) -> &Arc<Inner> {
        &self.pool
    }

    pub(crate) fn append_fresh(&mut self, buf: Buf, len: usize) {
        buf.set_len(len);
        self.push_buf(buf);
    }

    pub(crate) fn grow_tail(&mut self, n: usize) {
        if let Some(t) = self.tail {
            t.set_len(t.len() + n);
        }
    }

    pub(crate) fn set_len_total(&mut self, pktlen: usize) {
        self.set_pktlen(pktlen);
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("pktlen", &self.pktlen()).field("buffers", &self.count).finish()
    }
}
