//! Queues of chains (NuttX `iob_queue_s`).

use std::collections::VecDeque;

use crate::Chain;

/// A FIFO of packets: `push` at the back, `pop`/`peek` at the front. Clearing (or dropping)
/// the queue returns every buffer of every chain to its pool.
///
/// ```
/// use mempools_iob::{ChainQueue, IobPool};
///
/// let pool = IobPool::new("doc.queue", 4, 64, 0).unwrap();
/// let mut q = ChainQueue::new();
/// q.push(pool.alloc(false));
/// q.push(pool.alloc(false));
/// assert_eq!(q.len(), 2);
/// let first = q.pop().unwrap();
/// q.clear();
/// assert_eq!(pool.navail(false), 3);
/// drop(first);
/// ```
#[derive(Debug, Default)]
pub struct ChainQueue {
    chains: VecDeque<Chain>,
}

impl ChainQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `chain` at the back.
    pub fn push(&mut self, chain: Chain) {
        self.chains.push_back(chain);
    }

    /// Removes the chain at the front.
    pub fn pop(&mut self) -> Option<Chain> {
        self.chains.pop_front()
    }

    /// The chain at the front, left in the queue.
    pub fn peek(&self) -> Option<&Chain> {
        self.chains.front()
    }

    /// The chain at the front, mutably.
    pub fn peek_mut(&mut self) -> Option<&mut Chain> {
        self.chains.front_mut()
    }

    /// Frees every chain.
    pub fn clear(&mut self) {
        self.chains.clear();
    }

    /// Chains queued.
    pub fn len(&self) -> usize {
        self.chains.len()
    }

    /// Whether no chain is queued.
    pub fn is_empty(&self) -> bool {
        self.chains.is_empty()
    }

    /// The chains, front to back.
    pub fn iter(&self) -> impl Iterator<Item = &Chain> {
        self.chains.iter()
    }
}
