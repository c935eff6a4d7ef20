//! `poolstat demo`: a message broker built on mempools, watched live, with one leaking client
//! to find.
//!
//! The workload (one thread):
//!
//! 1. packets arrive in I/O buffers (`broker.iob`, mempools-iob);
//! 2. the broker copies each payload into the variable-size heap `broker.payloads`
//!    (mempools-arena) and wraps it in a reference-counted message (`broker.messages`,
//!    mempools-rc), whose destructor frees the payload;
//! 3. every client subscribed to the message's topic gets a delivery record from its own
//!    sub-pool (`client.<name>`, sub-pools of `broker.deliveries`, mempools-subpool) holding a
//!    reference to the message, and an ack ticket from its block pool `client.<name>.acks`
//!    (mempools-block, with `track_callers`);
//! 4. clients process their deliveries, ack them (the ticket goes back) and drop them (the
//!    message goes back when its last subscriber is done).
//!
//! One client defers alert messages "to retry later" and never gets back to them: its
//! deliveries, their messages and payloads stay allocated. Meanwhile the demo serves its
//! registry on the export socket, samples it through that socket like `poolstat --watch`,
//! shows the frames, picks the sub-pool whose used blocks kept growing across the samples
//! ([`find_leaker`]), prints the leak report of that client's ack pool (the file:line of the
//! allocations still live) and draws the payload heap as an SVG map.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use mempools_arena::Heap;
use mempools_block::{Block, LeakReport, PoolBuilder, SyncPool};
use mempools_core::sync::{thread, AtomicBool, Ordering};
use mempools_iob::IobPool;
use mempools_rc::{Pool, PoolBox, PoolRc};
use mempools_stats::{export, render_table, PoolKind, PoolStats};
use mempools_subpool::SubPool;

use crate::cli::{emit, parse_seconds};
use crate::table::GrowthTracker;
use crate::{svg, PoolstatError};

/// The name of the payload heap, whose map the demo draws.
pub const PAYLOAD_HEAP: &str = "broker.payloads";

/// Options of the demonstration.
#[derive(Clone, Debug, PartialEq)]
pub struct DemoOptions {
    /// How long the workload runs (default 6 s; `--quick`: 1.5 s).
    pub duration: Duration,
    /// How many frames of the table are shown over that time (default 6; `--quick`: 4).
    pub frames: usize,
    /// Where the SVG map goes (default: `poolstat-demo-broker.payloads.svg` in the temporary
    /// directory).
    pub svg: Option<PathBuf>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self { duration: Duration::from_secs(6), frames: 6, svg: None }
    }
}

impl DemoOptions {
    /// Parses the arguments after `demo`: `--quick`, `--seconds N`, `--frames N`,
    /// `-o FILE.svg`.
    ///
    /// # Errors
    ///
    /// A usage error naming the bad argument.
    pub fn parse(args: &[String]) -> Result<Self, PoolstatError> {
        let mut options = Self::default();
        let mut rest = args.iter();
        while let Some(arg) = rest.next() {
            let mut value =
                || rest.next().ok_or_else(|| PoolstatError::Usage(format!("{arg} needs a value")));
            match arg.as_str() {
                "--quick" => {
                    options.duration = Duration::from_millis(1500);
                    options.frames = 4;
                }
                "--seconds" => {
                    options.duration = parse_seconds(value()?, arg)?;
                    if options.duration < Duration::from_millis(100) {
                        return Err(PoolstatError::Usage("demo --seconds wants at least 0.1".into()));
                    }
                }
                "--frames" => {
                    let text = value()?;
                    options.frames =
                        text.parse().ok().filter(|n| (2..=1000).contains(n)).ok_or_else(|| {
                            PoolstatError::Usage(format!(
                                "--frames wants a number from 2 to 1000, not {text:?}"
                            ))
                        })?;
                }
                "-o" | "--output" => options.svg = Some(PathBuf::from(value()?)),
                _ => return Err(PoolstatError::Usage(format!("demo: unknown argument {arg:?}"))),
            }
        }
        Ok(options)
    }
}

/// What the demonstration found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoOutcome {
    /// The leaking sub-pool, as found from the samples.
    pub leak: Option<Leak>,
    /// Where the arena map was written (none when the heap reported no map).
    pub svg: Option<PathBuf>,
}

/// A sub-pool whose used blocks kept growing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leak {
    /// The sub-pool's name.
    pub name: String,
    /// Its super-pool's name.
    pub super_pool: String,
    /// Used blocks in the first and last samples.
    pub first: usize,
    /// Used blocks in the last sample.
    pub last: usize,
    /// Sampling intervals over which it grew, of `intervals`.
    pub grew_in: usize,
    /// Sampling intervals.
    pub intervals: usize,
}

/// Finds the sub-pool that leaks: among sub-pools and reduced pools present in every sample,
/// those whose used blocks grew in more than half of the sampling intervals, by at least one
/// block per interval on average and by more than twice their largest fall (jitter of clients
/// that do release is not growth); of those, the one that grew in most intervals, then the
/// most. `None` when no sub-pool grew like that.
pub fn find_leaker(samples: &[Vec<PoolStats>]) -> Option<Leak> {
    let first = samples.first()?;
    let intervals = samples.len().checked_sub(1)?;
    let mut best: Option<Leak> = None;
    for pool in first.iter().filter(|p| matches!(p.kind, PoolKind::SubPool | PoolKind::ReducedPool)) {
        let series: Option<Vec<usize>> = samples
            .iter()
            .map(|sample| sample.iter().find(|p| p.name == pool.name).map(|p| p.used_blocks))
            .collect();
        let Some(series) = series else { continue };
        let grew_in = series.windows(2).filter(|w| w[1] > w[0]).count();
        let max_fall = series.windows(2).map(|w| w[0].saturating_sub(w[1])).max().unwrap_or(0);
        let (start, end) = (series[0], series[series.len() - 1]);
        let net = end.saturating_sub(start);
        // Growth, not jitter: up in most intervals, by at least one block per interval on
        // average, and by more than twice the largest fall.
        if grew_in * 2 <= intervals || net < intervals || net <= 2 * max_fall {
            continue;
        }
        let candidate = Leak {
            name: pool.name.clone(),
            super_pool: pool.super_pool.clone().unwrap_or_default(),
            first: start,
            last: end,
            grew_in,
            intervals,
        };
        let better = best.as_ref().is_none_or(|b| (grew_in, end - start) > (b.grew_in, b.last - b.first));
        if better {
            best = Some(candidate);
        }
    }
    best
}

/// Runs the demonstration, writing its frames and findings to `out` (clearing the screen
/// between frames when `tty`).
///
/// # Errors
///
/// [`PoolstatError::Demo`] when a pool cannot be created or the workload fails;
/// [`PoolstatError::Stats`] when the export socket cannot be served or read;
/// [`PoolstatError::Write`] when output fails.
pub fn run(options: &DemoOptions, out: &mut dyn Write, tty: bool) -> Result<DemoOutcome, PoolstatError> {
    let socket = export::serve()?;
    let pid = std::process::id();
    emit(
        out,
        &format!(
            "mempools demo: a message broker (I/O buffers in, refcounted messages, one sub-pool per \
             client, payloads in an arena heap), running for {:.1} s.\nIts pools are served on {} \
             (try `poolstat {pid} --watch 1` in another terminal).\n\n",
            options.duration.as_secs_f64(),
            socket.display()
        ),
    )?;
    let stop = AtomicBool::new(false);
    let result = thread::scope(|scope| {
        let worker = scope.spawn(|| workload(&stop));
        // Whatever happens here, the worker stops and the scope can end.
        let _stopper = StopOnDrop(&stop);
        let sampled = sample(options, &socket, out, tty);
        let map = export::fetch_map(&socket, PAYLOAD_HEAP);
        stop.store(true, Ordering::SeqCst);
        let reports = worker.join().map_err(|_| PoolstatError::Demo("the workload panicked".into()))?;
        Ok::<_, PoolstatError>((sampled?, map, reports?))
    });
    export::stop();
    let (samples, map, reports) = result?;

    let mut text = String::new();
    let leak = find_leaker(&samples);
    match &leak {
        Some(leak) => {
            text.push_str(&format!(
                "Leak hunt: sub-pool \"{}\" (of {}) kept growing: {} → {} blocks in use, up in {} of {} \
                 sampling intervals.\n",
                leak.name, leak.super_pool, leak.first, leak.last, leak.grew_in, leak.intervals
            ));
            let level: Vec<String> = sub_pool_series(&samples)
                .into_iter()
                .filter(|(name, _, _)| *name != leak.name)
                .map(|(name, first, last)| format!("{name} {first} → {last}"))
                .collect();
            if !level.is_empty() {
                text.push_str(&format!("The other sub-pools held level: {}.\n", level.join(", ")));
            }
            match reports.iter().find(|(client, _)| *client == leak.name) {
                Some((_, report)) => {
                    text.push_str(&format!(
                        "\nLeak report of its ack pool (where the live blocks were allocated, most first):\n{report}"
                    ));
                    if let Some((site, n)) = report.sites.first() {
                        text.push_str(&format!(
                            "→ {n} live blocks come from {}:{}: that is where the leaked allocations are \
                             made.\n",
                            site.file(),
                            site.line()
                        ));
                    }
                }
                None => text.push_str("(no leak report recorded for that sub-pool)\n"),
            }
        }
        None => text.push_str("Leak hunt: no sub-pool kept growing over the samples.\n"),
    }
    let svg_path = match map {
        Ok(arenas) if !arenas.is_empty() => {
            let path = options
                .svg
                .clone()
                .unwrap_or_else(|| std::env::temp_dir().join(format!("poolstat-demo-{PAYLOAD_HEAP}.svg")));
            std::fs::write(&path, svg::render_map(PAYLOAD_HEAP, &arenas))
                .map_err(|source| PoolstatError::Write { path: path.clone(), source })?;
            let (used, free, overhead) = svg::totals(&arenas);
            text.push_str(&format!(
                "\nArena map of {PAYLOAD_HEAP} ({} arena(s), {} blocks; used {used} B, free {free} B, \
                 overhead {overhead} B): {}\n",
                arenas.len(),
                arenas.iter().map(|a| a.blocks.len()).sum::<usize>(),
                path.display()
            ));
            Some(path)
        }
        Ok(_) => {
            text.push_str(&format!("\n{PAYLOAD_HEAP} reported no block map: no SVG written.\n"));
            None
        }
        Err(e) => {
            text.push_str(&format!("\nno map of {PAYLOAD_HEAP}: {e}\n"));
            None
        }
    };
    emit(out, &text)?;
    Ok(DemoOutcome { leak, svg: svg_path })
}

/// Sub-pools with their used blocks in the first and last samples.
fn sub_pool_series(samples: &[Vec<PoolStats>]) -> Vec<(String, usize, usize)> {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else { return Vec::new() };
    first
        .iter()
        .filter(|p| matches!(p.kind, PoolKind::SubPool | PoolKind::ReducedPool))
        .filter_map(|p| {
            let end = last.iter().find(|q| q.name == p.name)?;
            Some((p.name.clone(), p.used_blocks, end.used_blocks))
        })
        .collect()
}

struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Samples the registry through the export socket, as `poolstat --watch` does, and shows
/// each frame.
fn sample(
    options: &DemoOptions,
    socket: &std::path::Path,
    out: &mut dyn Write,
    tty: bool,
) -> Result<Vec<Vec<PoolStats>>, PoolstatError> {
    let start = Instant::now();
    let interval = options.duration / options.frames as u32;
    let mut tracker = GrowthTracker::new();
    let mut samples = Vec::new();
    for frame in 1..=options.frames {
        thread::sleep((start + interval * frame as u32).saturating_duration_since(Instant::now()));
        let pools = export::fetch_snapshot(socket)?;
        let mut marked = pools.clone();
        let grown = tracker.mark(&mut marked);
        samples.push(pools);
        let mut text = String::new();
        if tty {
            text.push_str("\x1b[H\x1b[2J");
        }
        text.push_str(&format!(
            "frame {frame}/{} at {:.1} s; ▲ marks pools that grew since the last frame ({} grew)\n",
            options.frames,
            start.elapsed().as_secs_f64(),
            grown.len()
        ));
        text.push_str(&render_table(&marked));
        text.push('\n');
        emit(out, &text)?;
    }
    Ok(samples)
}

/// Message topics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Topic {
    Prices,
    News,
    Alerts,
}

/// A message: its payload lives in the heap and goes back to it when the last reference to
/// the message is released.
struct Message<'h> {
    heap: &'h Heap<'h>,
    payload: NonNull<u8>,
    len: usize,
    topic: Topic,
    seq: u64,
}

impl Message<'_> {
    fn payload(&self) -> &[u8] {
        // SAFETY: `payload` holds `len` initialised bytes from `heap`, owned by this message
        // until it drops.
        unsafe { core::slice::from_raw_parts(self.payload.as_ptr(), self.len) }
    }
}

impl Drop for Message<'_> {
    fn drop(&mut self) {
        // SAFETY: the payload came from this heap and only this message frees it.
        unsafe { self.heap.free(Some(self.payload)) };
    }
}

/// A delivery of a message to one client.
struct Delivery<'h> {
    message: PoolRc<Message<'h>>,
}

/// A subscriber: its own sub-pool of deliveries and its own pool of ack tickets.
struct Client<'h> {
    name: &'static str,
    topics: &'static [Topic],
    /// The bug: alerts are put aside "to retry later", and nothing ever retries.
    defers_alerts: bool,
    deliveries: SubPool<Delivery<'h>>,
    acks: SyncPool,
    inbox: VecDeque<(PoolBox<Delivery<'h>>, Block)>,
    deferred: Vec<(PoolBox<Delivery<'h>>, Block)>,
}

/// The clients: name, topics, whether it defers alerts.
const CLIENTS: [(&str, &[Topic], bool); 4] = [
    ("client.dashboard", &[Topic::Prices, Topic::News], false),
    ("client.archiver", &[Topic::Prices, Topic::News, Topic::Alerts], false),
    ("client.pager", &[Topic::Alerts, Topic::News], true),
    ("client.mobile", &[Topic::News, Topic::Alerts], false),
];

impl<'h> Client<'h> {
    fn deliver(&mut self, message: &PoolRc<Message<'h>>) {
        let delivery = self.deliveries.force_alloc(Delivery { message: message.clone() });
        let ticket = self.acks.force_alloc();
        self.inbox.push_back((delivery, ticket));
    }

    /// Handles all but `keep` deliveries of the inbox.
    fn process(&mut self, keep: usize) -> Result<(), String> {
        while self.inbox.len() > keep {
            let Some((delivery, ticket)) = self.inbox.pop_front() else { break };
            check_payload(&delivery.message)?;
            self.acks.release(ticket);
            if self.defers_alerts && delivery.message.topic == Topic::Alerts {
                self.defer(delivery);
            }
        }
        Ok(())
    }

    fn defer(&mut self, delivery: PoolBox<Delivery<'h>>) {
        let retry = self.acks.force_alloc();
        self.deferred.push((delivery, retry));
    }

    /// Releases everything (the end of the demo).
    fn shut_down(&mut self) {
        for (delivery, ticket) in self.inbox.drain(..).chain(self.deferred.drain(..)) {
            self.acks.release(ticket);
            drop(delivery);
        }
    }
}

/// The payload of message `seq` of length `len`: a recognisable pattern.
fn fill_payload(buf: &mut [u8], seq: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = (seq as usize).wrapping_mul(31).wrapping_add(i) as u8;
    }
}

fn check_payload(message: &Message<'_>) -> Result<(), String> {
    let mut expected = vec![0; message.len];
    fill_payload(&mut expected, message.seq);
    if message.payload() == expected.as_slice() {
        Ok(())
    } else {
        Err(format!("message {} came back corrupted", message.seq))
    }
}

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn demo_error(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("cannot create {what}: {e}")
}

/// The broker's workload, until `stop`; returns each client's ack-pool leak report, taken
/// before everything is released.
fn workload(stop: &AtomicBool) -> Result<Vec<(String, LeakReport)>, PoolstatError> {
    let fail = PoolstatError::Demo;
    let iob = IobPool::new("broker.iob", 64, 256, 8).map_err(|e| fail(demo_error("broker.iob")(&e)))?;
    // The payload heap registers itself (figures and block map) under its name.
    let mut region = vec![0u8; 2 << 20];
    let heap = Heap::new(PAYLOAD_HEAP, &mut region).map_err(|e| fail(demo_error(PAYLOAD_HEAP)(&e)))?;
    let messages: Pool<Message<'_>> = Pool::new("broker.messages");
    messages.expand(64).set_force_step(32);
    let deliveries: Pool<Delivery<'_>> = Pool::new("broker.deliveries");
    deliveries.expand(128).set_force_step(32);
    let mut clients = Vec::new();
    for (name, topics, defers_alerts) in CLIENTS {
        let sub = SubPool::new(&deliveries, name, 16).map_err(|e| fail(demo_error(name)(&e)))?;
        let acks = PoolBuilder::new(format!("{name}.acks"), 16)
            .track_callers(true)
            .force_step(16)
            .build_sync()
            .map_err(|e| fail(demo_error(name)(&e)))?;
        acks.expand(16);
        clients.push(Client {
            name,
            topics,
            defers_alerts,
            deliveries: sub,
            acks,
            inbox: VecDeque::new(),
            deferred: Vec::new(),
        });
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut packet = vec![0u8; 1500];
    let mut seq = 0u64;
    let mut outcome = Ok(());
    while outcome.is_ok() && !stop.load(Ordering::SeqCst) {
        for _ in 0..4 {
            // 1. A packet arrives in I/O buffers.
            let len = 32 + rng.below(1200) as usize;
            let topic = match rng.below(10) {
                0..=5 => Topic::Prices,
                6..=8 => Topic::News,
                _ => Topic::Alerts,
            };
            fill_payload(&mut packet[..len], seq);
            let mut chain = iob.chain();
            if chain.try_copy_in(&packet[..len], 0, false).is_err() {
                continue; // out of buffers: the packet is dropped, as a NIC would
            }
            // 2. The broker moves the payload into the heap and makes a message of it.
            let Some(payload) = heap.malloc(len) else { continue };
            // SAFETY: `payload` has `len` writable bytes, ours until freed.
            let dst = unsafe { core::slice::from_raw_parts_mut(payload.as_ptr(), len) };
            let copied = chain.copy_out(dst, 0).unwrap_or(0);
            drop(chain);
            let message = messages.force_alloc_rc(Message { heap: &heap, payload, len, topic, seq });
            if copied != len {
                outcome = Err(PoolstatError::Demo(format!("packet {seq}: {copied} of {len} bytes")));
                break;
            }
            // 3. Fan-out to the subscribers.
            for client in clients.iter_mut().filter(|c| c.topics.contains(&topic)) {
                client.deliver(&message);
            }
            seq += 1;
        }
        // 4. Clients work through their inboxes, leaving a few deliveries in flight.
        for client in &mut clients {
            let keep = rng.below(4) as usize;
            if let Err(e) = client.process(keep) {
                outcome = Err(PoolstatError::Demo(e));
            }
        }
        thread::sleep(Duration::from_millis(1));
    }
    let reports = clients.iter().map(|c| (c.name.to_string(), c.acks.leak_report())).collect();
    for client in &mut clients {
        client.shut_down();
    }
    outcome.map(|()| reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(name: &str, used: usize) -> PoolStats {
        PoolStats {
            used_blocks: used,
            super_pool: Some("super".into()),
            ..PoolStats::new(name, PoolKind::SubPool)
        }
    }

    #[test]
    fn the_leaker_is_the_sub_pool_that_keeps_growing() {
        let samples: Vec<Vec<PoolStats>> = [(3, 10, 0), (1, 30, 9), (4, 55, 0), (2, 80, 1)]
            .iter()
            .map(|&(a, b, c)| {
                let mut block = PoolStats::new("super", PoolKind::Block);
                block.used_blocks = 1000 + b; // a fixed-size pool growing more is not a sub-pool
                vec![block, sub("steady", a), sub("leaky", b), sub("spiky", c)]
            })
            .collect();
        let leak = find_leaker(&samples).unwrap();
        assert_eq!(
            leak,
            Leak {
                name: "leaky".into(),
                super_pool: "super".into(),
                first: 10,
                last: 80,
                grew_in: 3,
                intervals: 3
            }
        );
        assert_eq!(find_leaker(&samples[..1]), None, "one sample shows no growth");
        let series =
            |values: &[usize]| -> Vec<Vec<PoolStats>> { values.iter().map(|&v| vec![sub("p", v)]).collect() };
        assert_eq!(find_leaker(&series(&[3, 4, 3, 4])), None, "jitter");
        assert_eq!(find_leaker(&series(&[1, 3, 2, 3])), None, "jitter");
        assert_eq!(find_leaker(&series(&[9, 3, 4, 5])), None, "shrank overall");
        assert_eq!(find_leaker(&series(&[1, 2, 3, 4])).map(|l| l.last), Some(4), "a slow leak");
        assert_eq!(find_leaker(&series(&[1, 40, 30, 80])).map(|l| l.grew_in), Some(2), "a leak with a dip");
        assert_eq!(find_leaker(&[]), None);
    }

    #[test]
    fn options_parse() {
        let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
        assert_eq!(DemoOptions::parse(&[]).unwrap(), DemoOptions::default());
        let quick = DemoOptions::parse(&args("--quick -o x.svg")).unwrap();
        assert_eq!(
            (quick.duration, quick.frames, quick.svg),
            (Duration::from_millis(1500), 4, Some("x.svg".into()))
        );
        assert_eq!(DemoOptions::parse(&args("--seconds 2.5")).unwrap().duration, Duration::from_millis(2500));
        for bad in ["--seconds", "--seconds 0", "--frames 1", "--bogus"] {
            assert!(matches!(DemoOptions::parse(&args(bad)), Err(PoolstatError::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn payload_patterns_are_checked() {
        let mut region = vec![0u8; 4096];
        let heap = Heap::new("demo.test.heap", &mut region).unwrap();
        let payload = heap.malloc(40).unwrap();
        // SAFETY: 40 writable bytes from the heap.
        fill_payload(unsafe { core::slice::from_raw_parts_mut(payload.as_ptr(), 40) }, 7);
        let mut message = Message { heap: &heap, payload, len: 40, topic: Topic::News, seq: 7 };
        assert!(check_payload(&message).is_ok());
        message.seq = 8;
        assert!(check_payload(&message).is_err());
    }
}
