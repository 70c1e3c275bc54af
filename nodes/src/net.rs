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

use crate::ids::NodeId;
use crate::observe::{Observation, Observer};
use crate::proto::{Envelope, Message};
use lakesim_faults::Links;
use madsim::net::Endpoint;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

const PORT: u16 = 7000;
const TAG: u64 = 1;

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
}

impl Net {
    pub async fn bind(me: NodeId, observer: Arc<dyn Observer>, links: Links) -> io::Result<Net> {
        let endpoint = Endpoint::bind(addr_of(me)).await?;
        Ok(Net {
            me,
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
}
