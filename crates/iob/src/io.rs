//! `std::io` over chains: `Read` consumes from the front, `Write` appends, and vectored I/O
//! hands the buffers themselves to `writev`/`readv`.

use std::io::{self, IoSlice, IoSliceMut, Read, Write};

use crate::{Chain, IobError};

impl Read for Chain {
    /// Copies from the front of the chain and trims what was read.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.copy_out(buf, 0).expect("offset 0 is never past the end");
        self.trim_head(n);
        Ok(n)
    }
}

impl Write for Chain {
    /// Appends at the end, taking free buffers without waiting (unthrottled). Returns the
    /// bytes that fit; `ErrorKind::OutOfMemory` when not one byte could be appended.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let before = self.pktlen();
        match self.try_copy_in(buf, before, false) {
            Ok(n) => Ok(n),
            Err(IobError::NoBuffer) if self.pktlen() > before => Ok(self.pktlen() - before),
            Err(e) => Err(io::Error::new(io::ErrorKind::OutOfMemory, e)),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Chain {
    /// The data of every non-empty buffer as `IoSlice`s, for `write_vectored` (a packet goes
    /// to a socket without a copy).
    pub fn io_slices(&self) -> Vec<IoSlice<'_>> {
        self.buffers().filter(|b| !b.is_empty()).map(|b| IoSlice::new(b.data())).collect()
    }

    /// Appends up to `max` bytes read with one `read_vectored` call straight into the pool's
    /// buffers: the last buffer's free room and as many fresh buffers (taken without waiting)
    /// as `max` needs. Buffers the read did not fill go back. Returns the bytes read.
    ///
    /// # Errors
    ///
    /// `ErrorKind::OutOfMemory` when no room at all can be had for `max > 0` bytes, or the
    /// reader's error (the chain is then unchanged).
    pub fn fill_from<R: Read + ?Sized>(
        &mut self,
        reader: &mut R,
        max: usize,
        throttled: bool,
    ) -> io::Result<usize> {
        let bufsize = self.pool().bufsize();
        let (tail, room) = self.tail_room().map_or((None, 0), |(t, r)| (Some(t), r.min(max)));
        let mut fresh = Vec::new();
        let mut capacity = room;
        while capacity < max {
            match self.pool().take(throttled, Some(std::time::Duration::ZERO)) {
                Some(index) => {
                    fresh.push(self.pool().storage.buf(index));
                    capacity += bufsize.min(max - capacity);
                }
                None => break,
            }
        }
        if capacity == 0 && max > 0 {
            return Err(io::Error::new(io::ErrorKind::OutOfMemory, IobError::NoBuffer));
        }
        let result = {
            let mut slices = Vec::with_capacity(fresh.len() + 1);
            if let Some(t) = tail.filter(|_| room > 0) {
                // SAFETY: the tail's free room `offset + len .. offset + len + room` lies
                // inside its data area; the chain is borrowed mutably, so nothing else
                // touches it, and the slices are disjoint.
                slices.push(IoSliceMut::new(unsafe {
                    std::slice::from_raw_parts_mut(t.data().add(t.offset() + t.len()), room)
                }));
            }
            let mut left = max - room;
            for buf in &fresh {
                let n = bufsize.min(left);
                left -= n;
                // SAFETY: a fresh buffer we hold, not yet linked anywhere; `n <= bufsize`.
                slices.push(IoSliceMut::new(unsafe { std::slice::from_raw_parts_mut(buf.data(), n) }));
            }
            reader.read_vectored(&mut slices)
        };
        let pool = self.pool().clone();
        let n = match result {
            Ok(n) => n,
            Err(e) => {
                pool.release(&fresh.iter().map(|&b| pool.index_of(b)).collect::<Vec<_>>());
                return Err(e);
            }
        };
        let pktlen = self.pktlen();
        let into_tail = n.min(room);
        self.grow_tail(into_tail);
        let mut left = n - into_tail;
        let mut unused = Vec::new();
        for buf in fresh {
            if left == 0 {
                unused.push(pool.index_of(buf));
                continue;
            }
            let len = left.min(bufsize);
            left -= len;
            self.append_fresh(buf, len);
        }
        pool.release(&unused);
        self.set_len_total(pktlen + n);
        Ok(n)
    }
}
