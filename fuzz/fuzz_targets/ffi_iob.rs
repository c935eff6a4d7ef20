//! The `iob.h` C ABI (`mempools-ffi`, called directly) fed hostile input: NULL chains and
//! queues, foreign buffers (a fake `iob_s` on the stack, a pointer into the middle of a live
//! buffer), NULL `src` / `dest` with non-zero lengths, offsets past the end of the data
//! (`-ESPIPE`), huge lengths and trims, `iob_reserve` past `bufsize`, a second
//! `iob_initialize` (`-EALREADY`), and allocation until the pool (and its throttle) runs dry.
//!
//! Every outcome is the documented one (NULL / negative errno / one error line for each
//! refused chain, nothing changed by it), checked against a model of each chain's bytes
//! (`iob_copyout` reads them back), of the queue, and of the free buffers: after each step
//! every chain's `io_pktlen` is the sum of its `io_len`s, every `io_offset + io_len <=
//! bufsize`, and buffers in chains plus `iob_navail(false)` are all the buffers. Only
//! `iob_trycopyin` (and `iob_copyin` when enough buffers are free) is called: this target is
//! single-threaded and a blocking call with no buffer left would wait forever. Double frees
//! and use after free are undefined behaviour in `iob.h` and are not fed.
#![no_main]

use std::collections::VecDeque;
use std::sync::Once;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools::iob::*;
use mempools_fuzz::ffi::{expect_errors, quiet_logger};
use mempools_fuzz::program;

const NBUF: usize = 24;
const BUFSIZE: usize = 32;
const THROTTLE: usize = 4;

#[derive(Arbitrary, Debug)]
enum Op {
    Alloc(bool),
    CopyIn(u8, Vec<u8>, u16, bool, bool),
    CopyOut(u8, u16, u16),
    TrimHead(u8, u16),
    TrimTail(u8, u16),
    Pack(u8),
    Concat(u8, u8),
    Free(u8),
    FreeChain(u8),
    Reserve(u8, u8),
    UpdatePktlen(u8, u16),
    Enqueue(u8),
    Dequeue,
    Peek,
    FreeQueue,
    /// Every entry point with NULL, a fake buffer, or a pointer inside a live buffer.
    Hostile(u8, u8),
}

struct Ch {
    head: *mut iob_s,
    data: Vec<u8>,
}

/// Walks a chain: checks the header invariants, returns (buffers, bytes in order).
fn walk(head: *mut iob_s) -> (usize, Vec<u8>) {
    let mut n = 0;
    let mut bytes = Vec::new();
    let mut cur = head;
    // SAFETY: a chain we own, built by the library.
    unsafe {
        let pktlen = (*head).io_pktlen as usize;
        while !cur.is_null() {
            let (off, len) = ((*cur).io_offset as usize, (*cur).io_len as usize);
            assert!(off + len <= BUFSIZE, "offset {off} + len {len} > {BUFSIZE}");
            let data = std::ptr::addr_of!((*cur).io_data).cast::<u8>();
            bytes.extend_from_slice(std::slice::from_raw_parts(data.add(off), len));
            n += 1;
            cur = (*cur).io_flink;
        }
        assert_eq!(pktlen, bytes.len(), "io_pktlen is not the sum of the io_lens");
    }
    (n, bytes)
}

fn copyout(head: *mut iob_s, len: usize, offset: usize) -> (i32, Vec<u8>) {
    let mut out = vec![0u8; len];
    // SAFETY: a chain we own; `len` writable bytes.
    let r = unsafe { iob_copyout(out.as_mut_ptr(), head, len as u32, offset as u32) };
    out.truncate(r.max(0) as usize);
    (r, out)
}

struct St {
    chains: Vec<Ch>,
    /// The chains in `q`, front first.
    queue: VecDeque<Ch>,
    q: Box<iob_queue_s>,
}

impl St {
    fn check(&self) {
        let mut used = 0;
        for c in self.chains.iter().chain(self.queue.iter()) {
            let (n, bytes) = walk(c.head);
            assert_eq!(bytes, c.data, "chain contents");
            used += n;
        }
        assert_eq!(used + iob_navail(false) as usize, NBUF, "buffers lost or duplicated");
        assert_eq!(iob_navail(true) as usize, (NBUF - used).saturating_sub(THROTTLE));
    }

    fn pick(&self, i: u8) -> Option<usize> {
        (!self.chains.is_empty()).then(|| i as usize % self.chains.len())
    }
}

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        quiet_logger();
        assert!(iob_tryalloc(false).is_null(), "no buffer before iob_initialize");
        assert_eq!(iob_initialize(NBUF as u32, BUFSIZE as u32, THROTTLE as u32), 0);
        assert_eq!(iob_initialize(NBUF as u32, BUFSIZE as u32, THROTTLE as u32), -libc::EALREADY);
    });
}

fn run(data: &[u8]) {
    init();
    let mut u = Unstructured::new(data);
    let q = Box::new(iob_queue_s { qh_head: std::ptr::null_mut(), qh_tail: std::ptr::null_mut() });
    let mut st = St { chains: Vec::new(), queue: VecDeque::new(), q };
    for op in program::<Op>(&mut u, 150) {
        match op {
            Op::Alloc(throttled) => {
                let avail = iob_navail(throttled);
                let b = if throttled { iob_timedalloc(true, 0) } else { iob_tryalloc(false) };
                assert_eq!(b.is_null(), avail == 0, "alloc with {avail} available");
                if !b.is_null() {
                    // SAFETY: a fresh buffer.
                    unsafe {
                        assert!((*b).io_flink.is_null());
                        assert_eq!(((*b).io_len, (*b).io_offset, (*b).io_pktlen), (0, 0, 0));
                    }
                    st.chains.push(Ch { head: b, data: Vec::new() });
                }
            }
            Op::CopyIn(i, bytes, offset, throttled, blocking) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &mut st.chains[i];
                let offset = offset as usize % (c.data.len() + 4);
                let old = c.data.clone();
                let room = iob_navail(throttled) as usize * BUFSIZE;
                // SAFETY: a chain we own; `bytes` readable.
                let r = unsafe {
                    if blocking && offset + bytes.len() + BUFSIZE <= room {
                        iob_copyin(c.head, bytes.as_ptr(), bytes.len() as u32, offset as u32, throttled)
                    } else {
                        iob_trycopyin(c.head, bytes.as_ptr(), bytes.len() as u32, offset as u32, throttled)
                    }
                };
                if offset > old.len() {
                    assert_eq!(r, -libc::ESPIPE, "offset {offset} past {}", old.len());
                    continue;
                }
                let (_, now) = walk(c.head);
                if r >= 0 {
                    assert_eq!(r as usize, bytes.len());
                    let mut want = old.clone();
                    want.resize(want.len().max(offset + bytes.len()), 0);
                    want[offset..offset + bytes.len()].copy_from_slice(&bytes);
                    assert_eq!(now, want, "copyin");
                } else {
                    assert_eq!(r, -libc::ENOMEM, "copyin failed otherwise");
                    // The bytes copied stay: a prefix of `bytes` at `offset`.
                    assert_eq!(&now[..offset], &old[..offset]);
                    let k = now.len().saturating_sub(offset).min(bytes.len());
                    assert_eq!(&now[offset..offset + k], &bytes[..k]);
                }
                c.data = now;
            }
            Op::CopyOut(i, len, offset) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &st.chains[i];
                let (len, offset) = (len as usize % 1024, offset as usize % (c.data.len() + 4));
                let (r, out) = copyout(c.head, len, offset);
                if offset > c.data.len() {
                    assert_eq!(r, -libc::ESPIPE);
                } else {
                    let n = len.min(c.data.len() - offset);
                    assert_eq!(r as usize, n);
                    assert_eq!(out, c.data[offset..offset + n]);
                }
            }
            Op::TrimHead(i, n) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &mut st.chains[i];
                let n = n as usize;
                // SAFETY: a chain we own.
                let h = unsafe { iob_trimhead(c.head, n as u32) };
                assert!(!h.is_null(), "trimhead keeps one buffer");
                c.head = h;
                c.data.drain(..n.min(c.data.len()));
            }
            Op::TrimTail(i, n) => {
                let Some(i) = st.pick(i) else { continue };
                let n = n as usize;
                let c = &mut st.chains[i];
                // SAFETY: a chain we own.
                let h = unsafe { iob_trimtail(c.head, n as u32) };
                if n > 0 && n >= c.data.len() {
                    assert!(h.is_null(), "trimtail of everything frees the chain");
                    st.chains.swap_remove(i);
                } else {
                    assert_eq!(h, c.head);
                    let keep = c.data.len() - n;
                    c.data.truncate(keep);
                }
            }
            Op::Pack(i) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &mut st.chains[i];
                // SAFETY: a chain we own.
                let h = unsafe { iob_pack(c.head) };
                assert!(!h.is_null());
                c.head = h;
                let mut cur = h;
                // SAFETY: the packed chain.
                unsafe {
                    while !cur.is_null() {
                        assert_eq!((*cur).io_offset, 0, "pack moves data to offset 0");
                        if !(*cur).io_flink.is_null() {
                            assert_eq!(
                                (*cur).io_len as usize,
                                BUFSIZE,
                                "pack fills every buffer but the last"
                            );
                        }
                        cur = (*cur).io_flink;
                    }
                }
            }
            Op::Concat(i, j) => {
                let (Some(i), Some(j)) = (st.pick(i), st.pick(j)) else { continue };
                if i == j {
                    continue; // a chain concatenated to itself is a cycle: undefined
                }
                // SAFETY: two distinct chains we own; the second is given up.
                unsafe { iob_concat(st.chains[i].head, st.chains[j].head) };
                let second = st.chains[j].data.clone();
                st.chains[i].data.extend_from_slice(&second);
                st.chains.swap_remove(j);
            }
            Op::Free(i) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &mut st.chains[i];
                // SAFETY: a chain we own.
                let first = unsafe { (*c.head).io_len as usize };
                // SAFETY: a chain we own; its head is given up.
                let next = unsafe { iob_free(c.head) };
                c.data.drain(..first);
                if next.is_null() {
                    assert!(c.data.is_empty());
                    st.chains.swap_remove(i);
                } else {
                    c.head = next;
                }
            }
            Op::FreeChain(i) => {
                let Some(i) = st.pick(i) else { continue };
                let c = st.chains.swap_remove(i);
                // SAFETY: a chain we own, given up.
                unsafe { iob_free_chain(c.head) };
            }
            Op::Reserve(i, n) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &mut st.chains[i];
                let n = n as usize % (BUFSIZE + 4);
                // SAFETY: a chain we own.
                let (off, len) = unsafe { ((*c.head).io_offset as usize, (*c.head).io_len as usize) };
                let rest = c.data[len..].to_vec();
                let errs = usize::from(n > BUFSIZE);
                // SAFETY: a chain we own.
                expect_errors(errs, "iob_reserve", || unsafe { iob_reserve(c.head, n as u32) });
                let (_, now) = walk(c.head);
                if n > BUFSIZE {
                    assert_eq!(now, c.data, "a refused reserve changes nothing");
                } else {
                    // The head's data now starts at `n` and ends where it ended (or at `n`).
                    let new_len = (off + len).saturating_sub(n);
                    // SAFETY: a chain we own.
                    unsafe {
                        assert_eq!(((*c.head).io_offset as usize, (*c.head).io_len as usize), (n, new_len))
                    };
                    assert_eq!(&now[new_len..], &rest[..], "the rest of the chain is kept");
                    if n >= off {
                        let from = (n - off).min(len);
                        assert_eq!(&now[..new_len], &c.data[from..len], "the head's kept bytes");
                    }
                }
                c.data = now;
            }
            Op::UpdatePktlen(i, n) => {
                let Some(i) = st.pick(i) else { continue };
                let c = &mut st.chains[i];
                let n = n as usize % 512;
                // SAFETY: a chain we own.
                unsafe { iob_update_pktlen(c.head, n as u32) };
                let (_, now) = walk(c.head);
                if now.len() == n {
                    let k = n.min(c.data.len());
                    assert_eq!(&now[..k], &c.data[..k], "update_pktlen keeps the bytes it keeps");
                } else {
                    assert_eq!(now, c.data, "a refused update_pktlen changes nothing");
                }
                c.data = now;
            }
            Op::Enqueue(i) => {
                let Some(i) = st.pick(i) else { continue };
                let c = st.chains.swap_remove(i);
                let q: *mut iob_queue_s = &mut *st.q;
                // SAFETY: a NULL queue is refused.
                assert_eq!(
                    expect_errors(1, "NULL queue", || unsafe { iob_add_queue(c.head, std::ptr::null_mut()) }),
                    -libc::EINVAL
                );
                // SAFETY: a NULL chain is refused.
                assert_eq!(
                    expect_errors(1, "NULL chain", || unsafe { iob_add_queue(std::ptr::null_mut(), q) }),
                    -libc::EINVAL
                );
                // SAFETY: our queue; a chain we own, handed to it.
                assert_eq!(unsafe { iob_add_queue(c.head, q) }, 0);
                st.queue.push_back(c);
            }
            Op::Dequeue | Op::Peek => {
                let q: *mut iob_queue_s = &mut *st.q;
                let peek = matches!(op, Op::Peek);
                // SAFETY: our queue.
                let h = unsafe {
                    if peek {
                        iob_peek_queue(q)
                    } else {
                        iob_remove_queue(q)
                    }
                };
                assert_eq!(h, st.queue.front().map_or(std::ptr::null_mut(), |c| c.head));
                if !peek {
                    if let Some(c) = st.queue.pop_front() {
                        st.chains.push(c);
                    }
                }
            }
            Op::FreeQueue => {
                // SAFETY: our queue; its chains are given up.
                unsafe { iob_free_queue(&mut *st.q) };
                st.queue.clear();
                assert!(st.q.qh_head.is_null() && st.q.qh_tail.is_null());
            }
            Op::Hostile(kind, i) => {
                let mut fake = [0u64; 8];
                let fake_ptr = fake.as_mut_ptr().cast::<iob_s>();
                let bad: *mut iob_s = match kind % 3 {
                    0 => std::ptr::null_mut(),
                    1 => fake_ptr,
                    _ => {
                        let Some(i) = st.pick(i) else { continue };
                        // SAFETY: inside the live head buffer (header then data).
                        unsafe { st.chains[i].head.cast::<u8>().add(8).cast() }
                    }
                };
                let mut out = [0u8; 8];
                // SAFETY: NULL or foreign chains are refused before anything is touched.
                unsafe {
                    assert_eq!(
                        expect_errors(1, "copyin", || iob_trycopyin(bad, out.as_ptr(), 8, 0, false)),
                        -libc::EINVAL
                    );
                    assert_eq!(
                        expect_errors(1, "copyout", || iob_copyout(out.as_mut_ptr(), bad, 8, 0)),
                        -libc::EINVAL
                    );
                    assert!(expect_errors(1, "trimhead", || iob_trimhead(bad, 1)).is_null());
                    assert!(expect_errors(1, "trimtail", || iob_trimtail(bad, 1)).is_null());
                    assert!(expect_errors(1, "pack", || iob_pack(bad)).is_null());
                    assert!(expect_errors(1, "free", || iob_free(bad)).is_null());
                    expect_errors(1, "free_chain", || iob_free_chain(bad));
                    expect_errors(1, "reserve", || iob_reserve(bad, 0));
                    expect_errors(1, "update_pktlen", || iob_update_pktlen(bad, 0));
                    if let Some(c) = st.chains.first() {
                        // A bad second chain: the first is left as it was.
                        expect_errors(1, "concat", || iob_concat(c.head, bad));
                    }
                    // NULL src / dest with a length.
                    if let Some(c) = st.chains.first() {
                        assert_eq!(
                            expect_errors(1, "NULL src", || iob_trycopyin(
                                c.head,
                                std::ptr::null(),
                                4,
                                0,
                                false
                            )),
                            -libc::EINVAL
                        );
                        assert_eq!(
                            expect_errors(1, "NULL dest", || iob_copyout(std::ptr::null_mut(), c.head, 4, 0)),
                            -libc::EINVAL
                        );
                    }
                    assert!(iob_remove_queue(std::ptr::null_mut()).is_null());
                    assert!(iob_peek_queue(std::ptr::null_mut()).is_null());
                    iob_free_queue(std::ptr::null_mut());
                }
                assert_eq!(fake, [0u64; 8], "a fake buffer is never written");
            }
        }
        st.check();
    }
    for c in st.chains.drain(..) {
        // SAFETY: chains we own, given up.
        unsafe { iob_free_chain(c.head) };
    }
    // SAFETY: our queue; its chains are given up.
    unsafe { iob_free_queue(&mut *st.q) };
    assert_eq!(iob_navail(false) as usize, NBUF, "every buffer back");
}

fuzz_target!(|data: &[u8]| run(data));
