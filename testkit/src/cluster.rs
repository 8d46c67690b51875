//! A 3-node `nats-server` JetStream cluster on loopback, for tests that kill, restart and
//! step down nodes while the inventory runs: one [`NatsServer`] per node (its own store
//! directory and client port, a distinct `server_name`, cluster routes to the others), so a
//! restarted node keeps its store and ports.
//!
//! The stream leader is read from JetStream's stream info (`cluster.leader`, a server name)
//! and mapped to the node's index.

use std::time::{Duration, Instant};

use crate::{free_port, NatsServer};

/// A JetStream cluster of real `nats-server` processes on free loopback ports.
pub struct NatsCluster {
    nodes: Vec<NatsServer>,
    names: Vec<String>,
}

/// One JetStream API answer (the fields these helpers read).
#[derive(Debug, Clone)]
pub struct StreamCluster {
    /// The leader's server name, if one is elected.
    pub leader: Option<String>,
    /// Server names of the other replicas with whether each is current.
    pub replicas: Vec<(String, bool)>,
    /// The stream's last sequence as the answering leader has it.
    pub last_seq: u64,
}

impl NatsCluster {
    /// Starts three nodes and waits until JetStream answers (its meta leader is elected).
    pub fn start() -> Self {
        Self::start_nodes(3)
    }

    /// Starts `n` (≥ 1) clustered nodes and waits until JetStream answers.
    pub fn start_nodes(n: usize) -> Self {
        let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let tag = format!("inv{}", std::process::id());
        let names: Vec<String> = (0..n).map(|i| format!("{tag}-n{i}")).collect();
        let nodes = (0..n)
            .map(|i| {
                let routes = route_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| format!("nats://127.0.0.1:{p}"))
                    .collect::<Vec<_>>()
                    .join(",");
                let cluster = format!("nats://127.0.0.1:{}", route_ports[i]);
                NatsServer::start_on(
                    client_ports[i],
                    &[
                        "--server_name",
                        &names[i],
                        "--cluster_name",
                        &tag,
                        "--cluster",
                        &cluster,
                        "--routes",
                        &routes,
                    ],
                )
            })
            .collect();
        let cluster = Self { nodes, names };
        cluster.wait_ready(Duration::from_secs(60));
        cluster
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no node (never: kept for the `len` convention).
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's client URL, comma separated (what `NATS_URL` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Node `i`'s client URL.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].url()
    }

    /// Node `i`'s `server_name`.
    pub fn server_name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// The index of the node named `server_name`.
    pub fn index_of(&self, server_name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == server_name)
    }

    /// Node `i` itself (its directory holds `nats.log` and `store`).
    pub fn node(&self, i: usize) -> &NatsServer {
        &self.nodes[i]
    }

    /// Whether node `i` runs.
    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].is_running()
    }

    /// SIGKILLs node `i` (a crash), keeping its store and ports.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts node `i` again with its store and ports (after [`NatsCluster::kill`]).
    pub fn restart(&mut self, i: usize) {
        self.nodes[i].restart();
    }

    /// The URL of some running node (the first), for helpers' own requests.
    fn running_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.is_running())
            .map(NatsServer::url)
            .collect()
    }

    /// A JetStream API request through the first running node that answers it without an
    /// error; `None` when none does.
    fn api(&self, subject: &str) -> Option<serde_json::Value> {
        let urls = self.running_urls();
        let subject = subject.to_owned();
        block_on(async move {
            for url in urls {
                let Ok(client) = async_nats::ConnectOptions::new()
                    .connection_timeout(Duration::from_secs(2))
                    .request_timeout(Some(Duration::from_secs(2)))
                    .connect(url.as_str())
                    .await
                else {
                    continue;
                };
                let Ok(reply) = client.request(subject.clone(), "".into()).await else {
                    continue;
                };
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&reply.payload) else {
                    continue;
                };
                if v.get("error").is_none() {
                    return Some(v);
                }
            }
            None
        })
    }

    /// Waits until JetStream answers account info (the meta leader is elected), or panics.
    pub fn wait_ready(&self, limit: Duration) {
        poll(limit, "JetStream to answer in the cluster", || {
            self.api("$JS.API.INFO").map(|_| ())
        });
    }

    /// The stream's cluster state as its leader reports it (`None`: no answer, e.g. during an
    /// election).
    pub fn stream_cluster(&self, stream: &str) -> Option<StreamCluster> {
        let v = self.api(&format!("$JS.API.STREAM.INFO.{stream}"))?;
        let cluster = &v["cluster"];
        Some(StreamCluster {
            leader: cluster["leader"].as_str().map(str::to_owned),
            replicas: cluster["replicas"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|r| {
                            (
                                r["name"].as_str().unwrap_or_default().to_owned(),
                                r["current"].as_bool().unwrap_or(false),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            last_seq: v["state"]["last_seq"].as_u64().unwrap_or(0),
        })
    }

    /// The index of the node leading `stream` now (`None`: no leader answers).
    pub fn stream_leader(&self, stream: &str) -> Option<usize> {
        let leader = self.stream_cluster(stream)?.leader?;
        self.index_of(&leader)
    }

    /// Waits for `stream` to have a leader among the running nodes; its index.
    pub fn wait_for_leader(&self, stream: &str, limit: Duration) -> usize {
        poll(limit, &format!("a leader of stream {stream}"), || {
            self.stream_leader(stream).filter(|&i| self.is_running(i))
        })
    }

    /// Waits until every running node is a current replica of `stream` (a restarted node has
    /// caught up).
    pub fn wait_all_current(&self, stream: &str, limit: Duration) {
        poll(
            limit,
            &format!("every running node current on {stream}"),
            || {
                let c = self.stream_cluster(stream)?;
                let leader = self.index_of(c.leader.as_deref()?)?;
                let all = (0..self.len())
                    .filter(|&i| i != leader && self.is_running(i))
                    .all(|i| {
                        c.replicas
                            .iter()
                            .any(|(n, current)| n == self.server_name(i) && *current)
                    });
                all.then_some(())
            },
        );
    }

    /// Asks the leader of `stream` to step down (`$JS.API.STREAM.LEADER.STEPDOWN.<stream>`);
    /// returns whether the request was accepted.
    pub fn step_down(&self, stream: &str) -> bool {
        self.api(&format!("$JS.API.STREAM.LEADER.STEPDOWN.{stream}"))
            .is_some_and(|v| v["success"].as_bool() == Some(true))
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or panics naming `what` after `limit`.
fn poll<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a future to completion on a small runtime of its own, so these helpers can be called
/// from synchronous code and, inside `block_in_place`, from asynchronous tests.
fn block_on<F>(f: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap_or_else(|e| panic!("runtime: {e}"))
                .block_on(f)
        })
        .join()
        .unwrap_or_else(|_| panic!("cluster helper panicked"))
    })
}
