//! A service that gives each client a sub-pool of its session pool, and finds the client that
//! leaks through the statistics (Legato's "Sub-Pools" section).
//!
//! `cargo run -p mempools --example leaky_service`

use mempools::prelude::*;

/// One session of a client.
struct Session {
    client: usize,
    seq: u64,
}

/// The service: one super-pool of sessions, one sub-pool per registered client.
struct Service {
    sessions: Pool<Session>,
    clients: Vec<SubPool<Session>>,
}

impl Service {
    fn new() -> Self {
        // Created empty at start-up; each client's registration expands it by its needs.
        Service { sessions: Pool::new("broker.sessions"), clients: Vec::new() }
    }

    /// A client says how many sessions it needs at most: they are set aside in its sub-pool.
    fn register(&mut self, share: usize) -> usize {
        let id = self.clients.len();
        let name = format!("broker.client{id}");
        // Grow the super-pool by the client's needs, then set them aside for it.
        self.sessions.expand(share);
        self.clients.push(SubPool::new(&self.sessions, &name, share).expect("the super-pool grows"));
        id
    }

    fn open(&self, client: usize, seq: u64) -> PoolBox<Session> {
        // Force: a client over its share still gets a session, and its sub-pool warns.
        self.clients[client].force_alloc(Session { client, seq })
    }
}

fn main() {
    let mut service = Service::new();
    let ids: Vec<usize> = (0..4).map(|_| service.register(3)).collect();

    let mut leaked = Vec::new();
    for round in 0..10u64 {
        for &id in &ids {
            let session = service.open(id, round);
            assert_eq!((session.client, session.seq), (id, round));
            if id == 2 {
                leaked.push(session); // client 2 forgets to close its sessions
            }
            // everyone else closes theirs (drop)
        }
    }

    // Which client leaks? The one whose sub-pool overflowed its share.
    let snapshot = registry().snapshot();
    let leaky: Vec<&PoolStats> = snapshot
        .iter()
        .filter(|p| p.kind == PoolKind::SubPool && p.super_pool.as_deref() == Some("broker.sessions"))
        .filter(|p| p.overflows > 0)
        .collect();
    print!("{}", mempools::stats::render_table(&snapshot));
    for p in &leaky {
        println!("leaking client: {} ({} sessions in use, {} overflows)", p.name, p.used_blocks, p.overflows);
    }
    assert_eq!(leaky.len(), 1);
    assert_eq!(leaky[0].name, "broker.client2");

    // A client that disconnects gives its blocks back; the leaking one cannot be deleted
    // until its sessions are closed.
    let client2 = service.clients.remove(2);
    let (client2, err) = client2.delete().unwrap_err();
    println!("deleting broker.client2: {err}");
    drop(leaked);
    client2.delete().expect("no session left");
    for client in service.clients.drain(..) {
        client.delete().expect("idle client");
    }
    let s = service.sessions.stats();
    println!("broker.sessions after every client left: {} blocks, {} in use", s.total, s.in_use);
    assert_eq!(s.in_use, 0);
}
