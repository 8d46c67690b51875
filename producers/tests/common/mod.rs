//! Helpers shared by the integration tests: a real `nats-server` with the `INVENTORY` stream,
//! and reading everything the stream holds.
#![allow(clippy::unwrap_used, dead_code)]

use async_nats::jetstream::{self, stream::Stream};
use futures::StreamExt;
use inventory_bus::{self as bus, NatsConfig, StoredMessage, StreamSettings};
use inventory_schemas::{decode, EventData, EventType, InventoryEvent};
use inventory_testkit::NatsServer;

pub struct Bus {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub js: jetstream::Context,
    pub stream: Stream,
}

pub async fn bus() -> Bus {
    let server = NatsServer::start();
    let client = bus::connect(&NatsConfig {
        url: server.url(),
        name: "producers-test".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let js = jetstream::new(client.clone());
    let stream = bus::ensure_stream(&js, &StreamSettings::default())
        .await
        .unwrap();
    Bus {
        server,
        client,
        js,
        stream,
    }
}

/// One message of the stream, decoded when it decodes.
pub struct Msg {
    pub stored: StoredMessage,
    pub event: Option<InventoryEvent>,
}

impl Msg {
    pub fn ty(&self) -> Option<EventType> {
        self.event.as_ref().map(|e| e.ty)
    }

    pub fn key(&self) -> &str {
        self.event
            .as_ref()
            .and_then(|e| e.asset_key())
            .unwrap_or_default()
    }

    pub fn sweep(&self) -> &inventory_schemas::SweepCompleted {
        match &self.event.as_ref().unwrap().data {
            EventData::Sweep(s) => s,
            other => panic!("not a sweep: {other:?}"),
        }
    }

    pub fn asset(&self) -> &inventory_schemas::Asset {
        match &self.event.as_ref().unwrap().data {
            EventData::Asset(a) => a,
            other => panic!("not an asset state: {other:?}"),
        }
    }
}

/// Every message of the stream, in order.
pub async fn all(b: &Bus) -> Vec<Msg> {
    let mut stream = b.stream.clone();
    let last = bus::last_sequence(&mut stream).await.unwrap();
    if last == 0 {
        return Vec::new();
    }
    let mut follow = Box::pin(bus::follow(&stream, "inventory.>", 1).await.unwrap());
    let mut out = Vec::new();
    while let Some(m) = follow.next().await {
        let stored = m.unwrap();
        let seq = stored.seq;
        out.push(Msg {
            event: decode(&stored.payload).ok(),
            stored,
        });
        if seq >= last {
            break;
        }
    }
    out
}

/// Messages after stream sequence `after`.
pub async fn since(b: &Bus, after: u64) -> Vec<Msg> {
    all(b)
        .await
        .into_iter()
        .filter(|m| m.stored.seq > after)
        .collect()
}

/// `(type short name, asset key)` of the asset events among `msgs`.
pub fn asset_events(msgs: &[Msg]) -> Vec<(&'static str, String)> {
    msgs.iter()
        .filter(|m| m.stored.subject.starts_with("inventory.asset."))
        .map(|m| {
            (
                m.ty().map_or("undecodable", |t| t.short()),
                m.key().to_owned(),
            )
        })
        .collect()
}
