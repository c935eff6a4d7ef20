//! Shadow-model property test of chains: random programs of copy_in, try_copy_in, trim_head,
//! trim_tail, concat, pack, reserve, update_pktlen, free_head and Read/Write, checked against
//! a `Vec<u8>` per chain.
//!
//! After every step: each chain's bytes (copy_out and its buffers) equal its model; every
//! header keeps `offset + len <= bufsize` and `pktlen == Σ len`; the buffers held by the
//! chains plus the free ones equal the pool's; the registry's figures agree.

use std::io::{Read, Write};

use mempools_iob::{Chain, IobError, IobPool};
use proptest::prelude::*;

const NBUF: usize = 24;
const BUFSIZE: usize = 16;

#[derive(Clone, Debug)]
enum Op {
    CopyIn { chain: usize, len: usize, at: usize, fill: u8 },
    TryCopyIn { chain: usize, len: usize, at: usize, fill: u8 },
    CopyOutPastEnd { chain: usize, past: usize },
    TrimHead { chain: usize, n: usize },
    TrimTail { chain: usize, n: usize },
    Concat { from: usize, to: usize },
    Pack { chain: usize },
    Reserve { chain: usize, n: usize },
    UpdatePktlen { chain: usize, n: usize },
    FreeHead { chain: usize },
    ReadSome { chain: usize, n: usize },
    Write { chain: usize, len: usize, fill: u8 },
    Drop { chain: usize },
}

fn op() -> impl Strategy<Value = Op> {
    let c = 0usize..3;
    prop_oneof![
        4 => (c.clone(), 0usize..70, any::<usize>(), any::<u8>()).prop_map(|(chain, len, at, fill)| Op::CopyIn { chain, len, at, fill }),
        2 => (c.clone(), 0usize..200, any::<usize>(), any::<u8>()).prop_map(|(chain, len, at, fill)| Op::TryCopyIn { chain, len, at, fill }),
        1 => (c.clone(), 1usize..5).prop_map(|(chain, past)| Op::CopyOutPastEnd { chain, past }),
        2 => (c.clone(), 0usize..40).prop_map(|(chain, n)| Op::TrimHead { chain, n }),
        2 => (c.clone(), 0usize..40).prop_map(|(chain, n)| Op::TrimTail { chain, n }),
        1 => (c.clone(), c.clone()).prop_map(|(from, to)| Op::Concat { from, to }),
        2 => c.clone().prop_map(|chain| Op::Pack { chain }),
        1 => (c.clone(), 0usize..20).prop_map(|(chain, n)| Op::Reserve { chain, n }),
        1 => (c.clone(), 0usize..80).prop_map(|(chain, n)| Op::UpdatePktlen { chain, n }),
        1 => c.clone().prop_map(|chain| Op::FreeHead { chain }),
        1 => (c.clone(), 0usize..40).prop_map(|(chain, n)| Op::ReadSome { chain, n }),
        1 => (c.clone(), 0usize..60, any::<u8>()).prop_map(|(chain, len, fill)| Op::Write { chain, len, fill }),
        1 => c.prop_map(|chain| Op::Drop { chain }),
    ]
}

fn bytes_of(chain: &Chain) -> Vec<u8> {
    let mut out = vec![0; chain.pktlen()];
    assert_eq!(chain.copy_out(&mut out, 0).unwrap(), chain.pktlen());
    let joined: Vec<u8> = chain.buffers().flat_map(|b| b.data().to_vec()).collect();
    assert_eq!(joined, out, "copy_out and the buffers disagree");
    out
}

fn check(pool: &IobPool, chains: &[Chain], models: &[Vec<u8>]) {
    let mut held = 0;
    for (chain, model) in chains.iter().zip(models) {
        assert_eq!(&bytes_of(chain), model);
        let mut sum = 0;
        for b in chain.buffers() {
            assert!(b.offset() + b.len() <= BUFSIZE);
            sum += b.len();
        }
        assert_eq!(sum, chain.pktlen());
        assert_eq!(chain.buffers().count(), chain.buffer_count());
        held += chain.buffer_count();
    }
    assert_eq!(held + pool.navail(false), NBUF, "buffers leaked or doubled");
    let stats = pool.stats();
    assert_eq!((stats.used_blocks, stats.total_blocks, stats.block_size), (held, NBUF, BUFSIZE));
}

fn run(ops: Vec<Op>) {
    let pool = IobPool::new("iob.model", NBUF, BUFSIZE, 4).unwrap();
    let mut chains: Vec<Chain> = (0..3).map(|_| pool.chain()).collect();
    let mut models: Vec<Vec<u8>> = vec![Vec::new(); 3];
    for op in ops {
        match op {
            Op::CopyIn { chain, len, at, fill } => {
                let at = at % (models[chain].len() + 1);
                let src: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                let before = chains[chain].buffer_count();
                let end = at + len;
                let room = models[chain].len()
                    + chains[chain].buffers().last().map_or(0, |b| BUFSIZE - b.offset() - b.len());
                let needed = end.saturating_sub(room).div_ceil(BUFSIZE);
                if before + needed <= NBUF && needed > pool.navail(false) {
                    // Would block until another chain gives buffers back: not in one thread.
                    continue;
                }
                match chains[chain].copy_in(&src, at, false) {
                    Ok(n) => {
                        assert_eq!(n, len);
                        let m = &mut models[chain];
                        if m.len() < end {
                            m.resize(end, 0);
                        }
                        m[at..end].copy_from_slice(&src);
                    }
                    Err(IobError::ExceedsPool { .. }) => assert!(before + needed > NBUF),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::TryCopyIn { chain, len, at, fill } => {
                let at = at % (models[chain].len() + 1);
                let src: Vec<u8> = (0..len).map(|i| fill.wrapping_add(i as u8)).collect();
                let result = chains[chain].try_copy_in(&src, at, true);
                // Whatever happened, the bytes that made it in are the prefix of `src`.
                let new_len = chains[chain].pktlen();
                // On failure every byte up to the new end was copied (overwrites come first).
                let copied = if result.is_ok() { len } else { new_len - at };
                match result {
                    Ok(n) => assert_eq!(n, len),
                    Err(IobError::NoBuffer) => assert!(new_len < at + len),
                    Err(e) => panic!("{e}"),
                }
                let m = &mut models[chain];
                let end = at + copied;
                if m.len() < end {
                    m.resize(end, 0);
                }
                m[at..end].copy_from_slice(&src[..copied]);
                assert_eq!(m.len(), new_len);
            }
            Op::CopyOutPastEnd { chain, past } => {
                let offset = models[chain].len() + past;
                let mut out = [0u8; 4];
                assert_eq!(
                    chains[chain].copy_out(&mut out, offset),
                    Err(IobError::OffsetPastEnd { offset, pktlen: models[chain].len() })
                );
                assert!(chains[chain].copy_in(&out, offset, false).is_err());
            }
            Op::TrimHead { chain, n } => {
                let had_buffers = chains[chain].buffer_count() > 0;
                chains[chain].trim_head(n);
                let m = &mut models[chain];
                m.drain(..n.min(m.len()));
                if had_buffers {
                    assert!(chains[chain].buffer_count() >= 1, "trim_head keeps one buffer");
                }
            }
            Op::TrimTail { chain, n } => {
                chains[chain].trim_tail(n);
                let m = &mut models[chain];
                m.truncate(m.len().saturating_sub(n));
                if m.is_empty() && n > 0 {
                    assert_eq!(chains[chain].buffer_count(), 0, "trim_tail of everything frees all");
                }
            }
            Op::Concat { from, to } if from != to => {
                let taken = std::mem::replace(&mut chains[from], pool.chain());
                chains[to].concat(taken);
                let moved = std::mem::take(&mut models[from]);
                models[to].extend(moved);
            }
            Op::Pack { chain } => {
                let had = chains[chain].buffer_count();
                chains[chain].pack();
                let c = &chains[chain];
                let bufs: Vec<_> = c.buffers().collect();
                if had > 0 {
                    assert!(!bufs.is_empty());
                    assert_eq!(bufs[0].offset(), 0);
                    assert_eq!(bufs.len(), models[chain].len().div_ceil(BUFSIZE).max(1));
                    for b in &bufs[..bufs.len() - 1] {
                        assert_eq!(b.len(), BUFSIZE);
                    }
                }
            }
            Op::Reserve { chain, n } => {
                let head = chains[chain].buffers().next().map(|b| (b.offset(), b.len(), b.raw().to_vec()));
                let result = chains[chain].reserve(n);
                match head {
                    None => assert_eq!(result, Err(IobError::EmptyChain)),
                    Some(_) if n > BUFSIZE => {
                        assert!(matches!(result, Err(IobError::ReserveTooLarge { .. })))
                    }
                    Some((offset, len, raw)) => {
                        result.unwrap();
                        let m = &mut models[chain];
                        if n >= offset {
                            m.drain(..(n - offset).min(len));
                        } else {
                            let exposed = raw[n..offset].to_vec();
                            m.splice(0..0, exposed);
                        }
                    }
                }
            }
            Op::UpdatePktlen { chain, n } => {
                let old = models[chain].len();
                match chains[chain].update_pktlen(n) {
                    Ok(()) => {
                        // Growing exposes buffer contents: take them from the chain itself
                        // and check that the old bytes did not move.
                        let now = bytes_of(&chains[chain]);
                        assert_eq!(now.len(), n);
                        let m = &mut models[chain];
                        if n <= old {
                            m.truncate(n);
                        } else {
                            assert_eq!(&now[..old], &m[..]);
                            m.extend_from_slice(&now[old..]);
                        }
                    }
                    Err(IobError::NoBuffer) => assert!(n > old),
                    Err(e) => panic!("{e}"),
                }
            }
            Op::FreeHead { chain } => {
                let head_len = chains[chain].buffers().next().map_or(0, |b| b.len());
                chains[chain].free_head();
                models[chain].drain(..head_len);
            }
            Op::ReadSome { chain, n } => {
                let mut out = vec![0u8; n];
                let got = chains[chain].read(&mut out).unwrap();
                let m = &mut models[chain];
                assert_eq!(got, n.min(m.len()));
                assert_eq!(&out[..got], &m[..got]);
                m.drain(..got);
            }
            Op::Write { chain, len, fill } => {
                let src = vec![fill; len];
                match chains[chain].write(&src) {
                    Ok(n) => models[chain].extend_from_slice(&src[..n]),
                    Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory),
                }
            }
            Op::Drop { chain } => {
                chains[chain] = pool.chain();
                models[chain].clear();
            }
            _ => {}
        }
        check(&pool, &chains, &models);
    }
    drop(chains);
    assert_eq!(pool.navail(false), NBUF);
}

proptest! {
    // Under Miri: fewer cases, and no failure file (isolation forbids reading the cwd).
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 4 } else { 256 },
        failure_persistence: if cfg!(miri) { None } else { ProptestConfig::default().failure_persistence },
        ..ProptestConfig::default()
    })]

    #[test]
    fn chains_match_their_shadow_models(ops in prop::collection::vec(op(), 1..if cfg!(miri) { 30 } else { 200 })) {
        run(ops);
    }
}
