//! Typed messaging over madsim's datagram network.
//!
//! Every node listens on one endpoint at [`addr_of`] its id. Sends are fire-and-forget, like
//! UDP: the network may drop, delay, reorder and duplicate them, and a link may turn slow for a
//! while (the fault layer's [`Links`] decides both; the protocol must tolerate them).
//! Every delivery is reported to the observer, which puts it into the trace. A node may take
//! every message that has already arrived at once (`try_recv`, for group commit) and delay a
//! send by the time it spends on it (`send_after`, for the cost model).
//!
//! A message costs no task of its own: it goes on madsim's network at the send, with the
//! random delays madsim's send and receive would sleep drawn then and added to its latency
//! (`send_to_raw_now`, a patch in `vendor/madsim`), and it waits in the endpoint's mailbox
//! (the socket's receive buffer) until the node's task takes it (`poll_recv_from_raw_now`,
//! another patch): an arrival wakes the node's task directly, and a receive that a `select!`
//! drops loses nothing. Only a send on a link the fault layer slowed waits in a task.
//!
//! The mailbox is bounded, as a socket's receive buffer is: past [`RECV_BUFFER_MESSAGES`]
//! waiting, an arrival is dropped like any lost datagram (patch 9), and the node reports how
//! many it lost so far ([`Observation::RecvOverflow`]) when it next takes a message.

use crate::ids::NodeId;
use crate::observe::{Observation, Observer};
use crate::proto::{Envelope, Message};
use lakesim_faults::Links;
use madsim::net::Endpoint;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

const PORT: u16 = 7000;
const TAG: u64 = 1;
/// Messages a node's mailbox holds before arrivals are dropped. A node that stops taking
/// messages (a livelock, a flood) then costs bounded memory. Ordinary runs never come near it:
/// the deepest backlog over 2,300 `storm-5` seeds was 476 messages, and at most 172 over 300
/// seeds of `storm`, `slow-network`, `pageserver-crashes` and `object-store-outage` each.
pub const RECV_BUFFER_MESSAGES: usize = 4096;

/// The address node `id` listens on.
pub fn addr_of(id: NodeId) -> SocketAddr {
    SocketAddr::new(ip_of(id), PORT)
}

/// The IP address of node `id`: 10.0.x.y.
pub fn ip_of(id: NodeId) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, (id.0 >> 8) as u8, (id.0 & 0xff) as u8))
}

fn id_of(addr: SocketAddr) -> NodeId {
    match addr.ip() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            NodeId(u32::from(o[2]) << 8 | u32::from(o[3]))
        }
        IpAddr::V6(_) => unreachable!("lakesim nodes use IPv4"),
    }
}

/// One node's network interface.
#[derive(Clone)]
pub struct Net {
    me: NodeId,
    endpoint: Endpoint,
    observer: Arc<dyn Observer>,
    /// The fault layer: how many copies of a message go out, and how late.
    links: Links,
    /// Arrivals the full mailbox dropped, and how many of them the node has reported.
    drops: Arc<AtomicU64>,
    drops_reported: Arc<AtomicU64>,
}

impl Net {
    pub async fn bind(me: NodeId, observer: Arc<dyn Observer>, links: Links) -> io::Result<Net> {
        let endpoint = Endpoint::bind(addr_of(me)).await?;
        endpoint.set_recv_buffer(RECV_BUFFER_MESSAGES);
        Ok(Net {
            me,
            drops: endpoint.recv_buffer_drops(),
            drops_reported: Arc::new(AtomicU64::new(0)),
            endpoint,
            observer,
            links,
        })
    }

    pub fn me(&self) -> NodeId {
        self.me
    }

    /// Sends `msg` to `to` in the background; loss is silent, as on a real network. A send on
    /// a link at its usual speed queues the message in madsim's network at once; only a link
    /// the fault layer slowed needs a task to hold the message back.
    pub fn send(&self, to: NodeId, msg: Message) {
        let fate = self.links.fate(self.me.0, to.0);
        if fate.delay.is_zero() {
            return self.send_copies(to, msg, fate.copies);
        }
        let net = self.clone();
        madsim::task::spawn(async move {
            madsim::time::sleep(fate.delay).await;
            net.send_copies(to, msg, fate.copies);
        });
    }

    /// Puts `copies` of `msg` on the network to `to` now (more than one: the fault layer
    /// duplicates it). Each copy draws its own delays and latency, so copies may reorder.
    fn send_copies(&self, to: NodeId, msg: Message, copies: u8) {
        debug_assert!(copies >= 1, "a send puts at least one copy out");
        for _ in 1..copies {
            let copy = Box::new(msg.clone());
            let _ = self.endpoint.send_to_raw_now(addr_of(to), TAG, copy);
        }
        let _ = self
            .endpoint
            .send_to_raw_now(addr_of(to), TAG, Box::new(msg));
    }

    /// Waits for the next message. Cancellation-safe: a message stays in the mailbox until
    /// this takes it, so a `select!` that drops the wait loses none. One task per node
    /// receives (the node's own loop).
    pub async fn recv(&self) -> Envelope {
        let (payload, from) =
            std::future::poll_fn(|cx| self.endpoint.poll_recv_from_raw_now(TAG, cx)).await;
        self.deliver(payload, from)
    }

    /// The next message if one has already arrived.
    pub fn try_recv(&self) -> Option<Envelope> {
        let (payload, from) = self.endpoint.try_recv_from_raw_now(TAG)?;
        Some(self.deliver(payload, from))
    }

    /// Sends `msg` to `to` once `delay` has passed (the time the sender spends on it). madsim
    /// cannot sleep under 1 ms, so a shorter delay sends at once: it hides in the network's
    /// latency rather than becoming a whole millisecond.
    pub fn send_after(&self, to: NodeId, msg: Message, delay: std::time::Duration) {
        if delay < std::time::Duration::from_millis(1) {
            return self.send(to, msg);
        }
        let net = self.clone();
        madsim::task::spawn(async move {
            madsim::time::sleep(delay).await;
            net.send(to, msg);
        });
    }

    fn deliver(&self, payload: madsim::net::Payload, from: SocketAddr) -> Envelope {
        let msg = *payload
            .downcast::<Message>()
            .expect("only lakesim messages on the wire");
        let from = id_of(from);
        self.report_drops();
        self.observer.observe(
            self.me,
            Observation::Delivered {
                from,
                kind: msg.kind(),
                term: msg.term(),
            },
        );
        Envelope { from, msg }
    }

    /// Reports the arrivals a full mailbox dropped since the last report, if any (two relaxed
    /// atomic loads per message otherwise).
    fn report_drops(&self) {
        let dropped = self.drops.load(Ordering::Relaxed);
        if dropped == self.drops_reported.load(Ordering::Relaxed) {
            return;
        }
        debug_assert!(dropped > self.drops_reported.load(Ordering::Relaxed));
        self.drops_reported.store(dropped, Ordering::Relaxed);
        self.observer
            .observe(self.me, Observation::RecvOverflow { dropped });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Lsn, Term};
    use std::sync::Mutex;
    use std::time::Duration;

    /// Keeps every overflow report.
    #[derive(Default)]
    struct Overflows(Mutex<Vec<u64>>);

    impl Observer for Overflows {
        fn observe(&self, _: NodeId, obs: Observation) {
            if let Observation::RecvOverflow { dropped } = obs {
                self.0.lock().unwrap().push(dropped);
            }
        }
    }

    #[test]
    fn a_full_mailbox_drops_arrivals_and_the_node_reports_them_once() {
        const EXTRA: usize = 7;
        let rt = madsim::runtime::Runtime::with_seed_and_config(1, madsim::Config::default());
        let overflows = Arc::new(Overflows::default());
        let seen = overflows.clone();
        let received = rt.block_on(async move {
            let handle = madsim::runtime::Handle::current();
            let (a, b) = (NodeId(1), NodeId(2));
            let receiver = handle.create_node().ip(ip_of(b)).build();
            let net_b = receiver
                .spawn(async move { Net::bind(b, seen, Links::new(2, 0.0, None)).await })
                .await
                .unwrap()
                .unwrap();
            let sender = handle.create_node().ip(ip_of(a)).build();
            sender
                .spawn(async move {
                    let net = Net::bind(
                        a,
                        Arc::new(crate::observe::NoObserver),
                        Links::new(1, 0.0, None),
                    )
                    .await
                    .unwrap();
                    for i in 0..RECV_BUFFER_MESSAGES + EXTRA {
                        let msg = Message::AppendResponse {
                            term: Term(i as u64),
                            flush_lsn: Lsn::ZERO,
                            commit_lsn: Lsn::ZERO,
                            ps_ingested_lsn: Lsn::ZERO,
                        };
                        net.send(b, msg);
                    }
                })
                .await
                .unwrap();
            madsim::time::sleep(Duration::from_secs(10)).await;
            receiver
                .spawn(async move { std::iter::from_fn(|| net_b.try_recv()).count() })
                .await
                .unwrap()
        });
        assert_eq!(received, RECV_BUFFER_MESSAGES);
        assert_eq!(*overflows.0.lock().unwrap(), vec![EXTRA as u64]);
    }
}
