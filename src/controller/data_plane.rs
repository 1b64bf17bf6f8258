//! What the servers say about their JetStream data: every member's `/jsz` (the meta
//! group as it sees it, the streams it leads, its storage), summarised by a pure
//! function ([`summarize`]) into `status.jetstream` and the `JetStreamHealthy`
//! condition. The monitoring port needs no credentials, so this works for every auth
//! style.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde::Deserialize;

use crate::api::v1beta1::{JetStreamStatus, MemberStorage, MetaPeer, StreamReplicas};

/// How many streams `status.jetstream.streamReplicas` lists.
pub const LISTED_STREAMS: usize = 20;
/// Storage use (per cent of the limit) from which a member is reported nearly full.
const NEARLY_FULL_PERCENT: u64 = 90;
/// Largest `/jsz` answer read: with stream details and configs, about 1 KiB per stream.
const MAX_BODY: usize = 16 << 20;
/// The query: stream details with their configs, each stream from its leader only
/// (servers before 2.10 ignore that and answer for every replica; [`summarize`] counts
/// each stream once either way).
const JSZ_PATH: &str = "/jsz?accounts=true&streams=true&config=true&stream-leader-only=true";

/// One member's `/jsz`, the fields read here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct JszDetail {
    /// JetStream is off on this server.
    #[serde(default)]
    pub disabled: bool,
    /// The server's limits.
    #[serde(default)]
    pub config: JszConfig,
    /// Memory storage used, bytes.
    #[serde(default)]
    pub memory: u64,
    /// File storage used, bytes.
    #[serde(default)]
    pub storage: u64,
    /// The meta group as this server sees it (clustered servers only).
    #[serde(default)]
    pub meta_cluster: Option<MetaInfo>,
    /// Accounts with their streams.
    #[serde(default)]
    pub account_details: Vec<AccountDetail>,
}

/// `/jsz` `config`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct JszConfig {
    /// `max_mem`, bytes.
    #[serde(default)]
    pub max_memory: i64,
    /// `max_file`, bytes.
    #[serde(default)]
    pub max_storage: i64,
}

/// `/jsz` `meta_cluster`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct MetaInfo {
    /// The meta leader's server name.
    #[serde(default)]
    pub leader: String,
    /// The other peers, as this server sees them.
    #[serde(default)]
    pub replicas: Vec<PeerInfo>,
}

/// A raft peer in `/jsz`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct PeerInfo {
    /// Server name.
    #[serde(default)]
    pub name: String,
    /// Seen recently and caught up.
    #[serde(default)]
    pub current: bool,
    /// Not seen recently.
    #[serde(default)]
    pub offline: bool,
    /// Operations behind.
    #[serde(default)]
    pub lag: u64,
}

/// `/jsz` `account_details[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct AccountDetail {
    /// The account's name.
    #[serde(default)]
    pub name: String,
    /// Its streams on this server.
    #[serde(default)]
    pub stream_detail: Vec<StreamDetail>,
}

/// `/jsz` `stream_detail[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StreamDetail {
    /// The stream's name.
    #[serde(default)]
    pub name: String,
    /// Its configuration (`config=true`).
    #[serde(default)]
    pub config: Option<StreamConfig>,
    /// Its raft group (clustered streams).
    #[serde(default)]
    pub cluster: Option<StreamCluster>,
    /// Its state.
    #[serde(default)]
    pub state: StreamState,
}

/// The part of a stream's config read here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StreamConfig {
    /// Configured replicas.
    #[serde(default)]
    pub num_replicas: u32,
}

/// A stream's raft group.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StreamCluster {
    /// The leader's server name.
    #[serde(default)]
    pub leader: String,
    /// The other replicas.
    #[serde(default)]
    pub replicas: Vec<PeerInfo>,
}

/// The part of a stream's state read here.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
pub struct StreamState {
    /// Its consumers.
    #[serde(default)]
    pub consumer_count: u64,
}

/// One member's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberJsz {
    /// The pod (its server name).
    pub pod: String,
    /// `/jsz`, or why there is none.
    pub jsz: Result<JszDetail, String>,
}

/// The `JetStreamHealthy` verdict: `Ok(message)` or `Err((reason, message))`.
pub type Verdict = Result<String, (&'static str, String)>;

/// The members a cluster `name` of `size` has or should have: its pods, and the names
/// `name-1`..`name-<size>`.
pub fn members(name: &str, size: i32, pods: &[Arc<Pod>]) -> BTreeSet<String> {
    let mut members: BTreeSet<String> = pods.iter().map(|p| p.name_any()).collect();
    members
        .extend((1..=u32::try_from(size).unwrap_or(0)).map(|i| crate::render::pod_name(name, i)));
    members
}

/// Asks every live member with an IP for its `/jsz`, all at once.
pub async fn observe(pods: &[Arc<Pod>], https: bool) -> Vec<MemberJsz> {
    let asks = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| Some((p.name_any(), p.status.as_ref()?.pod_ip.clone()?)))
        .map(|(pod, ip)| async move {
            let jsz = super::health::get_json(&ip, https, JSZ_PATH, MAX_BODY)
                .await
                .map_err(|e| format!("/jsz: {e}"));
            MemberJsz { pod, jsz }
        });
    futures::future::join_all(asks).await
}

/// Where the streams with a replica on a server stand, for a scale-down.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hosted {
    /// Streams `(account, name)` with a replica on it and their configured count of
    /// replicas: a move can start.
    pub movable: Vec<(String, String)>,
    /// Streams with a replica on it that have more replicas than configured: a move is
    /// under way (the new replica is catching up).
    pub moving: Vec<(String, String)>,
}

impl Hosted {
    /// No replica is left on the server.
    pub fn is_empty(&self) -> bool {
        self.movable.is_empty() && self.moving.is_empty()
    }
}

/// The streams with a replica on `server`, from the members' answers (each stream as
/// its leader reports it, or any replica on servers that answer for every replica).
pub fn hosted_on(answers: &[MemberJsz], server: &str) -> Hosted {
    let mut seen = BTreeSet::new();
    let mut out = Hosted::default();
    for a in answers {
        let Ok(j) = &a.jsz else { continue };
        for acc in &j.account_details {
            for s in &acc.stream_detail {
                let key = (acc.name.clone(), s.name.clone());
                if !seen.insert(key.clone()) {
                    continue;
                }
                let cluster = s.cluster.clone().unwrap_or_default();
                let leader = if cluster.leader.is_empty() {
                    a.pod.clone()
                } else {
                    cluster.leader.clone()
                };
                let mut hosts: BTreeSet<&str> =
                    cluster.replicas.iter().map(|r| r.name.as_str()).collect();
                hosts.insert(leader.as_str());
                if !hosts.contains(server) {
                    continue;
                }
                let configured = s.config.as_ref().map_or(0, |c| c.num_replicas).max(1);
                if hosts.len() > configured as usize {
                    out.moving.push(key);
                } else {
                    out.movable.push(key);
                }
            }
        }
    }
    out
}

/// Meta peers that are no member: named as a member of `cluster` (`<cluster>-<n>`),
/// absent from `members` (the pods that exist and those the spec asks for). They are
/// what a scale-down or a replaced server leaves behind in the meta group.
pub fn departed_peers(
    cluster: &str,
    members: &BTreeSet<String>,
    answers: &[MemberJsz],
) -> Vec<String> {
    let answered: Vec<(&str, &JszDetail)> = answers
        .iter()
        .filter_map(|a| a.jsz.as_ref().ok().map(|j| (a.pod.as_str(), j)))
        .filter(|(_, j)| !j.disabled)
        .collect();
    let leader = answered
        .iter()
        .filter_map(|(_, j)| j.meta_cluster.as_ref())
        .map(|m| m.leader.as_str())
        .find(|l| !l.is_empty())
        .unwrap_or_default();
    meta_peers(&answered, leader)
        .into_iter()
        .map(|p| p.name)
        .filter(|n| !members.contains(n) && crate::render::member_index(cluster, n).is_some())
        .collect()
}

/// `status.jetstream` and the `JetStreamHealthy` verdict from the members' answers.
/// `members` names every pod that is (or is about to be again) a member; `prev` is the
/// stored figure, kept for the streams when no member answers (the data is still on
/// the volumes).
pub fn summarize(
    members: &BTreeSet<String>,
    answers: &[MemberJsz],
    prev: Option<&JetStreamStatus>,
) -> (JetStreamStatus, Verdict) {
    let answered: Vec<(&str, &JszDetail)> = answers
        .iter()
        .filter_map(|a| a.jsz.as_ref().ok().map(|j| (a.pod.as_str(), j)))
        .filter(|(_, j)| !j.disabled)
        .collect();
    if answered.is_empty() {
        let mut kept = prev.cloned().unwrap_or_default();
        kept.meta_leader.clear();
        kept.meta_peers.clear();
        kept.members.clear();
        let why: Vec<String> = answers
            .iter()
            .filter_map(|a| a.jsz.as_ref().err().map(|e| format!("{}: {e}", a.pod)))
            .take(3)
            .collect();
        let message = if why.is_empty() {
            "no member is running yet".to_string()
        } else {
            format!(
                "no member's monitoring endpoint answered ({})",
                why.join("; ")
            )
        };
        return (kept, Err(("Unreachable", message)));
    }

    let leader = answered
        .iter()
        .filter_map(|(_, j)| j.meta_cluster.as_ref())
        .map(|m| m.leader.as_str())
        .find(|l| !l.is_empty())
        .unwrap_or_default()
        .to_string();
    let meta_peers = meta_peers(&answered, &leader);

    // Each stream once, by (account, name): a leader's answer, or any replica's.
    let mut streams: BTreeMap<(String, String), (u32, u64)> = BTreeMap::new();
    for (_, j) in &answered {
        for acc in &j.account_details {
            for s in &acc.stream_detail {
                let replicas = s
                    .config
                    .as_ref()
                    .map(|c| c.num_replicas)
                    .filter(|r| *r > 0)
                    .unwrap_or_else(|| {
                        let others = s.cluster.as_ref().map_or(0, |c| c.replicas.len());
                        u32::try_from(others + 1).unwrap_or(u32::MAX)
                    });
                streams
                    .entry((acc.name.clone(), s.name.clone()))
                    .or_insert((replicas, s.state.consumer_count));
            }
        }
    }
    let consumers = streams.values().map(|(_, c)| c).sum();
    let mut stream_replicas: Vec<StreamReplicas> = streams
        .iter()
        .map(|((account, name), (replicas, _))| StreamReplicas {
            account: account.clone(),
            name: name.clone(),
            replicas: *replicas,
        })
        .collect();
    stream_replicas.sort_by(|a, b| {
        b.replicas
            .cmp(&a.replicas)
            .then_with(|| (&a.account, &a.name).cmp(&(&b.account, &b.name)))
    });
    stream_replicas.truncate(LISTED_STREAMS);

    let mut storage: Vec<MemberStorage> = answered
        .iter()
        .map(|(pod, j)| MemberStorage {
            name: (*pod).to_string(),
            file_used: mebibytes(j.storage),
            file_limit: mebibytes(u64::try_from(j.config.max_storage).unwrap_or(0)),
            memory_used: mebibytes(j.memory),
            memory_limit: mebibytes(u64::try_from(j.config.max_memory).unwrap_or(0)),
        })
        .collect();
    storage.sort_by(|a, b| a.name.cmp(&b.name));

    let status = JetStreamStatus {
        meta_leader: leader.clone(),
        meta_peers,
        streams: streams.len() as u64,
        consumers,
        stream_replicas,
        members: storage,
    };
    let verdict = verdict(members, answers, &answered, &status);
    (status, verdict)
}

/// The meta peers as the leader sees them (itself included), else as any member that
/// answered sees them; sorted by name.
fn meta_peers(answered: &[(&str, &JszDetail)], leader: &str) -> Vec<MetaPeer> {
    let view = answered
        .iter()
        .find(|(pod, _)| *pod == leader)
        .or_else(|| answered.iter().find(|(_, j)| j.meta_cluster.is_some()));
    let Some((me, j)) = view else {
        return Vec::new();
    };
    let Some(meta) = j.meta_cluster.as_ref() else {
        return Vec::new();
    };
    let mut peers: Vec<MetaPeer> = meta
        .replicas
        .iter()
        .map(|p| MetaPeer {
            name: p.name.clone(),
            current: p.current,
            offline: p.offline,
            lag: p.lag,
        })
        .collect();
    if !peers.iter().any(|p| p.name == *me) {
        peers.push(MetaPeer {
            name: (*me).to_string(),
            current: true,
            offline: false,
            lag: 0,
        });
    }
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    peers
}

fn verdict(
    members: &BTreeSet<String>,
    answers: &[MemberJsz],
    answered: &[(&str, &JszDetail)],
    s: &JetStreamStatus,
) -> Verdict {
    if s.meta_leader.is_empty() && answered.iter().any(|(_, j)| j.meta_cluster.is_some()) {
        return Err((
            "NoMetaLeader",
            format!(
                "the JetStream meta group has no leader ({} of {} members answered): streams \
                 cannot be created, changed or placed until a majority of its peers is up",
                answered.len(),
                members.len()
            ),
        ));
    }
    let size = s.meta_peers.len();
    let quorum = size / 2 + 1;
    let departed: Vec<&str> = s
        .meta_peers
        .iter()
        .filter(|p| !members.contains(&p.name))
        .map(|p| p.name.as_str())
        .collect();
    if !departed.is_empty() {
        return Err((
            "DepartedPeers",
            format!(
                "the JetStream meta group counts {size} peers and needs {quorum} for quorum, \
                 but {} {}: remove each from the group with `nats server raft peer-remove \
                 <name>` (system account) and move its stream replicas first",
                departed.join(", "),
                if departed.len() == 1 {
                    "is not a member of this cluster"
                } else {
                    "are not members of this cluster"
                },
            ),
        ));
    }
    let offline: Vec<&str> = s
        .meta_peers
        .iter()
        .filter(|p| p.offline)
        .map(|p| p.name.as_str())
        .collect();
    if !offline.is_empty() {
        return Err((
            "PeersOffline",
            format!(
                "{} offline in the JetStream meta group ({} of {size} peers up, {quorum} needed)",
                offline.join(", "),
                size - offline.len()
            ),
        ));
    }
    let behind: Vec<String> = s
        .meta_peers
        .iter()
        .filter(|p| !p.current)
        .map(|p| format!("{} ({} behind)", p.name, p.lag))
        .collect();
    if !behind.is_empty() {
        return Err((
            "PeersBehind",
            format!(
                "not current with the meta leader {}: {}",
                s.meta_leader,
                behind.join(", ")
            ),
        ));
    }
    let silent: Vec<String> = answers
        .iter()
        .filter_map(|a| a.jsz.as_ref().err().map(|e| format!("{}: {e}", a.pod)))
        .collect();
    if !silent.is_empty() {
        return Err((
            "MembersUnreachable",
            format!("/jsz did not answer on {}", silent.join("; ")),
        ));
    }
    let full: Vec<String> = answered
        .iter()
        .filter_map(|(pod, j)| {
            let limit = u64::try_from(j.config.max_storage)
                .ok()
                .filter(|l| *l > 0)?;
            (j.storage.saturating_mul(100) >= limit.saturating_mul(NEARLY_FULL_PERCENT)).then(
                || {
                    format!(
                        "{pod} uses {} of {}",
                        mebibytes(j.storage).0,
                        mebibytes(limit).0
                    )
                },
            )
        })
        .collect();
    if !full.is_empty() {
        return Err((
            "StorageNearlyFull",
            format!(
                "file storage at {NEARLY_FULL_PERCENT}% or more: {}; grow \
                 spec.jetstream.fileStorage.size or remove data",
                full.join(", ")
            ),
        ));
    }
    Ok(format!(
        "meta leader {}, {size} peers current; {} streams, {} consumers",
        s.meta_leader, s.streams, s.consumers
    ))
}

/// `bytes` rounded up to whole MiB, as a quantity (`Gi` when it is whole GiB).
pub fn mebibytes(bytes: u64) -> Quantity {
    let mib = bytes.div_ceil(1 << 20);
    if mib > 0 && mib.is_multiple_of(1024) {
        Quantity(format!("{}Gi", mib / 1024))
    } else {
        Quantity(format!("{mib}Mi"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn peer(name: &str, current: bool, offline: bool) -> PeerInfo {
        PeerInfo {
            name: name.into(),
            current,
            offline,
            lag: 0,
        }
    }

    fn answer(pod: &str, leader: &str, peers: Vec<PeerInfo>) -> MemberJsz {
        MemberJsz {
            pod: pod.into(),
            jsz: Ok(JszDetail {
                config: JszConfig {
                    max_memory: 1 << 30,
                    max_storage: 10 << 30,
                },
                storage: 3 << 20,
                meta_cluster: Some(MetaInfo {
                    leader: leader.into(),
                    replicas: peers,
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_real_leaders_jsz_summarizes() {
        // /jsz?accounts=true&streams=true&config=true of nats-server 2.15 (trimmed): the
        // meta leader of three, leading the R3 stream ORDERS with one consumer.
        let raw = r#"{"server_id":"N","config":{"max_memory":6442450944,"max_storage":1073741824,"store_dir":"/data/jetstream"},"memory":0,"storage":5242881,"accounts":1,"streams":1,"consumers":1,"meta_cluster":{"name":"js","leader":"js-0","peer":"x","replicas":[{"name":"js-1","current":true,"active":12000000,"peer":"a"},{"name":"js-2","current":true,"active":9000000,"lag":1,"peer":"b"}],"cluster_size":3,"pending":0},"account_details":[{"name":"$G","id":"$G","memory":0,"storage":5242881,"stream_detail":[{"name":"ORDERS","created":"2026-12-03T00:00:00Z","cluster":{"name":"js","leader":"js-0","replicas":[{"name":"js-1","current":true,"active":1,"peer":"a"},{"name":"js-2","current":true,"active":1,"peer":"b"}]},"config":{"name":"ORDERS","subjects":["orders.>"],"num_replicas":3},"state":{"messages":10,"bytes":5242881,"consumer_count":1}}]}]}"#;
        let jsz: JszDetail = serde_json::from_str(raw).expect("parses");
        let answers = vec![MemberJsz {
            pod: "js-0".into(),
            jsz: Ok(jsz),
        }];
        let (s, v) = summarize(&members(&["js-0", "js-1", "js-2"]), &answers, None);
        assert_eq!(s.meta_leader, "js-0");
        assert_eq!(
            s.meta_peers
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            ["js-0", "js-1", "js-2"]
        );
        assert_eq!(s.meta_peers[2].lag, 1);
        assert_eq!((s.streams, s.consumers), (1, 1));
        assert_eq!(
            s.stream_replicas,
            [StreamReplicas {
                account: "$G".into(),
                name: "ORDERS".into(),
                replicas: 3
            }]
        );
        assert_eq!(s.members[0].file_used, Quantity("6Mi".into()));
        assert_eq!(s.members[0].file_limit, Quantity("1Gi".into()));
        assert_eq!(
            v,
            Ok("meta leader js-0, 3 peers current; 1 streams, 1 consumers".into())
        );
    }

    #[test]
    fn peers_that_are_not_members_are_named_with_the_quorum_they_cost() {
        let answers = vec![answer(
            "js-0",
            "js-0",
            vec![
                peer("js-1", true, false),
                peer("js-2", true, false),
                peer("js-3", false, true),
                peer("js-4", false, true),
            ],
        )];
        let (s, v) = summarize(&members(&["js-0", "js-1", "js-2"]), &answers, None);
        assert_eq!(s.meta_peers.len(), 5);
        let (reason, message) = v.expect_err("ghost peers are unhealthy");
        assert_eq!(reason, "DepartedPeers");
        assert!(
            message.contains("counts 5 peers and needs 3 for quorum, but js-3, js-4 are not"),
            "{message}"
        );
    }

    #[test]
    fn an_offline_member_a_lagging_one_and_a_silent_one_each_have_a_reason() {
        let m = members(&["js-0", "js-1", "js-2"]);
        let offline = answer(
            "js-0",
            "js-0",
            vec![peer("js-1", true, false), peer("js-2", false, true)],
        );
        assert_eq!(
            summarize(&m, &[offline], None).1.map_err(|e| e.0),
            Err("PeersOffline")
        );
        let behind = answer(
            "js-0",
            "js-0",
            vec![peer("js-1", true, false), peer("js-2", false, false)],
        );
        assert_eq!(
            summarize(&m, &[behind], None).1.map_err(|e| e.0),
            Err("PeersBehind")
        );
        let fine = answer(
            "js-0",
            "js-0",
            vec![peer("js-1", true, false), peer("js-2", true, false)],
        );
        let silent = MemberJsz {
            pod: "js-2".into(),
            jsz: Err("connection refused".into()),
        };
        assert_eq!(
            summarize(&m, &[fine.clone(), silent], None)
                .1
                .map_err(|e| e.0),
            Err("MembersUnreachable")
        );
        assert!(summarize(&m, &[fine], None).1.is_ok());
    }

    #[test]
    fn no_leader_and_no_answer_keep_the_streams_known_before() {
        let m = members(&["js-0", "js-1", "js-2"]);
        let leaderless = answer("js-1", "", vec![peer("js-0", false, true)]);
        assert_eq!(
            summarize(&m, &[leaderless], None).1.map_err(|e| e.0),
            Err("NoMetaLeader")
        );
        let prev = JetStreamStatus {
            meta_leader: "js-0".into(),
            streams: 4,
            stream_replicas: vec![StreamReplicas {
                account: "$G".into(),
                name: "A".into(),
                replicas: 3,
            }],
            ..Default::default()
        };
        let down = MemberJsz {
            pod: "js-0".into(),
            jsz: Err("no answer within 3s".into()),
        };
        let (s, v) = summarize(&m, &[down], Some(&prev));
        assert_eq!((s.streams, s.meta_leader.as_str()), (4, ""));
        assert_eq!(s.stream_replicas, prev.stream_replicas);
        let (reason, message) = v.expect_err("unreachable");
        assert_eq!(reason, "Unreachable");
        assert!(message.contains("js-0: no answer within 3s"), "{message}");
    }

    #[test]
    fn streams_are_counted_once_and_listed_by_replicas() {
        let stream = |name: &str, replicas: u32| StreamDetail {
            name: name.into(),
            config: Some(StreamConfig {
                num_replicas: replicas,
            }),
            cluster: None,
            state: StreamState { consumer_count: 2 },
        };
        let mut a = answer("js-0", "js-0", vec![]);
        let mut b = answer("js-1", "js-0", vec![]);
        if let (Ok(ja), Ok(jb)) = (a.jsz.as_mut(), b.jsz.as_mut()) {
            ja.account_details = vec![AccountDetail {
                name: "A".into(),
                stream_detail: vec![stream("R1", 1), stream("R3", 3)],
            }];
            // A server before 2.10 answers for its replicas too.
            jb.account_details = vec![AccountDetail {
                name: "A".into(),
                stream_detail: vec![stream("R3", 3), stream("R5", 5)],
            }];
        }
        let (s, _) = summarize(&members(&["js-0", "js-1"]), &[a, b], None);
        assert_eq!((s.streams, s.consumers), (3, 6));
        assert_eq!(
            s.stream_replicas
                .iter()
                .map(|r| (r.name.as_str(), r.replicas))
                .collect::<Vec<_>>(),
            [("R5", 5), ("R3", 3), ("R1", 1)]
        );
    }

    #[test]
    fn a_nearly_full_member_is_named() {
        let mut a = answer("js-0", "js-0", vec![]);
        if let Ok(j) = a.jsz.as_mut() {
            j.storage = 95 << 20;
            j.config.max_storage = 100 << 20;
        }
        let (_, v) = summarize(&members(&["js-0"]), &[a], None);
        let (reason, message) = v.expect_err("nearly full");
        assert_eq!(reason, "StorageNearlyFull");
        assert!(message.contains("js-0 uses 95Mi of 100Mi"), "{message}");
    }
}
