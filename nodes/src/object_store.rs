//! The object store: an S3-like node. Whole objects, put (atomic: an object is there whole or
//! not at all; optionally conditional on a version, so that a late write never rolls an
//! object back), get, list by prefix, delete. It can be slow or unavailable (the harness kills
//! or cuts it off), but an object it acknowledged is never lost: the bucket is its durable
//! storage and outlives the process.

use crate::bugs::{Bug, BugSet};
use crate::ids::NodeId;
use crate::net::Net;
use crate::observe::{Observation, Observer};
use crate::proto::Message;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The store's durable contents, shared with the harness so that it survives restarts.
#[derive(Clone, Default)]
pub struct Bucket(Arc<Mutex<Objects>>);

/// The objects, and the version of each written by a conditional put.
#[derive(Default)]
struct Objects {
    data: BTreeMap<String, Arc<Vec<u8>>>,
    versions: BTreeMap<String, u64>,
}

impl Bucket {
    /// The object under `key`, if the store holds it (for the harness, which reads the bucket
    /// as the durable truth).
    pub fn object(&self, key: &str) -> Option<Arc<Vec<u8>>> {
        self.0.lock().unwrap().data.get(key).cloned()
    }

    fn apply(&self, msg: &Message) -> Option<Message> {
        let mut guard = self.0.lock().unwrap();
        let Objects {
            data: objects,
            versions,
        } = &mut *guard;
        let (request_id, data, keys) = match msg {
            Message::StorePut {
                request_id,
                key,
                data,
                version,
            } => {
                let stale =
                    version.is_some_and(|v| versions.get(key).is_some_and(|held| *held >= v));
                if version.is_some_and(|v| versions.get(key).is_some_and(|held| *held > v)) {
                    crate::probe!(StaleIndexPutRejected);
                }
                if !stale {
                    objects.insert(key.clone(), data.clone());
                    if let Some(v) = version {
                        versions.insert(key.clone(), *v);
                    }
                }
                (*request_id, None, Vec::new())
            }
            Message::StoreGet { request_id, key } => {
                (*request_id, objects.get(key).cloned(), Vec::new())
            }
            Message::StoreList { request_id, prefix } => {
                let keys = objects
                    .keys()
                    .filter(|k| k.starts_with(prefix.as_str()))
                    .cloned()
                    .collect();
                (*request_id, None, keys)
            }
            Message::StoreDelete { request_id, key } => {
                objects.remove(key);
                versions.remove(key);
                (*request_id, None, Vec::new())
            }
            _ => return None,
        };
        Some(Message::StoreResponse {
            request_id,
            data,
            keys,
        })
    }
}

#[derive(Clone)]
pub struct ObjectStoreConfig {
    pub id: NodeId,
    pub bucket: Bucket,
    pub observer: Arc<dyn Observer>,
    /// The network's faults (duplication, latency spikes), which its interface applies.
    pub links: lakesim_faults::Links,
    pub bugs: BugSet,
}

/// Runs the object store until the process is killed.
pub async fn run(cfg: ObjectStoreConfig) {
    cfg.observer.observe(cfg.id, Observation::Started);
    let net = match Net::bind(cfg.id, cfg.observer.clone(), cfg.links.clone()).await {
        Ok(net) => net,
        Err(e) => crate::process::abort(cfg.id, cfg.observer.as_ref(), &e).await,
    };
    loop {
        let env = net.recv().await;
        let reply = cfg.bucket.apply(&env.msg);
        // The object-store-silent bug takes the request in and never answers.
        if let Some(reply) = reply.filter(|_| !cfg.bugs.has(Bug::ObjectStoreSilent)) {
            net.send(env.from, reply);
        }
    }
}
