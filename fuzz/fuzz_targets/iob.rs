//! `mempools-iob` chains against `Vec<u8>` models: try_copy_in (at any offset, running out of
//! buffers part way), copy_out, trim_head, trim_tail, concat, pack, update_pktlen (shrinking),
//! clear, over a small pool so that buffers run out often. After every step each chain's bytes
//! equal its model, `pktlen` its length, and the pool's free buffers equal `nbuffers` minus the
//! buffers the chains hold.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use mempools_fuzz::next_op;
use mempools_iob::{Chain, IobError, IobPool};

#[derive(Arbitrary, Debug)]
struct Config {
    nbuffers: u8,
    bufsize: u8,
    throttle: u8,
}

#[derive(Arbitrary, Debug)]
enum Op {
    CopyIn(u8, Vec<u8>, u16, bool),
    CopyOut(u8, u16, u8),
    TrimHead(u8, u16),
    TrimTail(u8, u16),
    Concat(u8, u8),
    Pack(u8),
    Shrink(u8, u16),
    Clear(u8),
}

const CHAINS: usize = 3;

fn contents(c: &Chain) -> Vec<u8> {
    let mut out = vec![0u8; c.pktlen()];
    assert_eq!(c.copy_out(&mut out, 0).unwrap(), out.len());
    out
}

fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(cfg) = Config::arbitrary(&mut u) else { return };
    let nbuffers = 1 + cfg.nbuffers as usize % 16;
    let bufsize = 1 + cfg.bufsize as usize % 64;
    let throttle = cfg.throttle as usize % nbuffers;
    let pool = IobPool::new("fuzz.iob", nbuffers, bufsize, throttle).expect("a small pool");
    let mut chains: Vec<Chain> = (0..CHAINS).map(|_| pool.chain()).collect();
    let mut models: Vec<Vec<u8>> = vec![Vec::new(); CHAINS];

    while let Some(op) = next_op::<Op>(&mut u) {
        match op {
            Op::CopyIn(c, src, offset, throttled) => {
                let c = c as usize % CHAINS;
                let src = &src[..src.len().min(4 * bufsize)];
                let old = models[c].len();
                let offset = offset as usize % (old + 2);
                match chains[c].try_copy_in(src, offset, throttled) {
                    Ok(n) => {
                        assert_eq!(n, src.len());
                        let m = &mut models[c];
                        let end = offset + src.len();
                        if end > m.len() {
                            m.resize(end, 0);
                        }
                        m[offset..end].copy_from_slice(src);
                    }
                    Err(IobError::OffsetPastEnd { offset: o, pktlen }) => {
                        assert!(o == offset && pktlen == old && offset > old);
                    }
                    Err(IobError::NoBuffer) => {
                        // The bytes copied so far stay: they run from `offset` to the new end.
                        let new_len = chains[c].pktlen();
                        assert!(new_len >= old && new_len >= offset && new_len < offset + src.len());
                        let k = new_len - offset;
                        let m = &mut models[c];
                        m.resize(new_len, 0);
                        m[offset..new_len].copy_from_slice(&src[..k]);
                        assert_eq!(pool.navail(throttled), 0, "NoBuffer with buffers available");
                    }
                    Err(e) => panic!("try_copy_in: {e}"),
                }
            }
            Op::CopyOut(c, offset, len) => {
                let c = c as usize % CHAINS;
                let m = &models[c];
                let offset = offset as usize % (m.len() + 2);
                let mut out = vec![0u8; len as usize];
                match chains[c].copy_out(&mut out, offset) {
                    Ok(n) => {
                        assert!(offset <= m.len());
                        let want = &m[offset..(offset + out.len()).min(m.len())];
                        assert_eq!(&out[..n], want);
                    }
                    Err(IobError::OffsetPastEnd { .. }) => assert!(offset > m.len()),
                    Err(e) => panic!("copy_out: {e}"),
                }
            }
            Op::TrimHead(c, n) => {
                let c = c as usize % CHAINS;
                let n = n as usize % (models[c].len() + 3);
                chains[c].trim_head(n);
                let cut = n.min(models[c].len());
                models[c].drain(..cut);
            }
            Op::TrimTail(c, n) => {
                let c = c as usize % CHAINS;
                let n = n as usize % (models[c].len() + 3);
                chains[c].trim_tail(n);
                let keep = models[c].len().saturating_sub(n);
                models[c].truncate(keep);
            }
            Op::Concat(a, b) => {
                let (a, b) = (a as usize % CHAINS, b as usize % CHAINS);
                if a == b {
                    continue;
                }
                let other = std::mem::replace(&mut chains[b], pool.chain());
                chains[a].concat(other);
                let tail = std::mem::take(&mut models[b]);
                models[a].extend_from_slice(&tail);
            }
            Op::Pack(c) => {
                let c = c as usize % CHAINS;
                let before = chains[c].buffer_count();
                chains[c].pack();
                let len = models[c].len();
                let need = len.div_ceil(bufsize).max(usize::from(before > 0));
                assert_eq!(chains[c].buffer_count(), need, "pack of {len} bytes into {bufsize}-byte buffers");
            }
            Op::Shrink(c, n) => {
                let c = c as usize % CHAINS;
                let n = n as usize % (models[c].len() + 1);
                chains[c].update_pktlen(n).expect("shrinking never fails");
                models[c].truncate(n);
            }
            Op::Clear(c) => {
                let c = c as usize % CHAINS;
                chains[c].clear();
                models[c].clear();
            }
        }
        let mut held = 0;
        for (chain, model) in chains.iter().zip(&models) {
            assert_eq!(chain.pktlen(), model.len());
            assert_eq!(&contents(chain), model, "chain contents differ from the model");
            assert!(chain.buffers().all(|b| b.offset() + b.len() <= bufsize));
            held += chain.buffer_count();
        }
        assert_eq!(pool.navail(false), nbuffers - held, "free buffers");
        assert_eq!(pool.navail(true), (nbuffers - held).saturating_sub(throttle));
    }
    drop(chains);
    assert_eq!(pool.navail(false), nbuffers, "every buffer back");
}

fuzz_target!(|data: &[u8]| run(data));
