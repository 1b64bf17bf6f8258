//! The apply step against kube's tower-test mock apiserver: the exact requests the
//! operator sends for a new cluster, a scale-down, a roll and a user's mistake, decided
//! by the pure `decide` from hand-made observations (as controller-rs tests its
//! reconciler). Nothing is sent that the decision did not ask for.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{Pod, PodCondition, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store;
use kube::{Client, client::Body};
use nats_operator::api::defaults::at_read_time;
use nats_operator::api::v1beta1::{Auth, ClientAuth, NatsCluster, NatsClusterSpec};
use nats_operator::controller::Scope;
use nats_operator::controller::apply::apply;
use nats_operator::controller::context::Context;
use nats_operator::controller::decide::{Step, decide};
use nats_operator::controller::observe::Observed;
use nats_operator::render::Paths;
use serde_json::{Value, json};
use tower_test::mock::Handle;

type MockHandle = Handle<Request<Body>, Response<Body>>;

fn context(client: Client) -> Context {
    Context {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "nats-operator".into(),
                instance: Some("test".into()),
            },
        ),
        client,
        pods: store().0,
        services: store().0,
        secrets: store().0,
        pdbs: store().0,
        roles: store().0,
        paths: Paths::default(),
        metrics: Arc::default(),
        scope: Scope::Namespace("ns".into()),
        failures: Default::default(),
        recent: Default::default(),
    }
}

/// Answers every request like an apiserver that accepts it (the object back), and
/// records `METHOD path` with the content type of patches.
async fn serve(mut handle: MockHandle) -> Vec<String> {
    let mut seen = Vec::new();
    while let Ok(Some((req, send))) =
        tokio::time::timeout(Duration::from_millis(300), handle.next_request()).await
    {
        let method = req.method().clone();
        let mut path = req.uri().path().to_string();
        if path.ends_with("/exec") {
            path = format!("{path}?{}", req.uri().query().unwrap_or_default());
        }
        let kind = if method == Method::PATCH {
            format!(
                " ({})",
                req.headers()["content-type"].to_str().unwrap_or_default()
            )
        } else {
            String::new()
        };
        seen.push(format!("{method} {path}{kind}"));
        let bytes = req.into_body().collect_bytes().await.unwrap();
        let mut body: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
        if method == Method::DELETE {
            let name = path.rsplit('/').next().unwrap_or_default();
            body = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}});
        }
        if body.get("metadata").is_none() {
            body["metadata"] = json!({"name": "x"});
        }
        send.send_response(
            Response::builder()
                .status(200)
                .body(Body::from(serde_json::to_vec(&body).unwrap()))
                .unwrap(),
        );
    }
    seen
}

async fn requests_of(o: &Observed) -> Vec<String> {
    let d = decide(
        o,
        &Paths::default(),
        None,
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    );
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let ctx = context(Client::new(svc, "ns"));
    let server = tokio::spawn(serve(handle));
    apply(&ctx, o, &d).await.unwrap();
    drop(ctx);
    server.await.unwrap()
}

fn stored(spec: NatsClusterSpec) -> NatsCluster {
    let mut c = NatsCluster::new("legacy", spec);
    c.metadata.namespace = Some("ns".into());
    c.metadata.uid = Some("uid-1".into());
    c
}

fn observed(c: NatsCluster) -> Observed {
    let o = Observed::new(Arc::new(c));
    assert!(o.meta.is_ok(), "{:?}", o.meta);
    o
}

fn spec(size: i32, version: &str) -> NatsClusterSpec {
    NatsClusterSpec {
        size,
        version: version.into(),
        ..Default::default()
    }
}

/// The pods a decision would create, running and ready.
fn running_members(o: &Observed) -> Vec<Arc<Pod>> {
    decide(
        o,
        &Paths::default(),
        None,
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    )
    .steps
    .into_iter()
    .filter_map(|s| match s {
        Step::CreatePod(p) => Some(p),
        _ => None,
    })
    .map(|p| {
        let mut p = *p;
        p.metadata.owner_references = Some(vec![OwnerReference {
            uid: "uid-1".into(),
            ..Default::default()
        }]);
        p.status = Some(PodStatus {
            phase: Some("Running".into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: "True".into(),
                ..Default::default()
            }]),
            ..Default::default()
        });
        Arc::new(p)
    })
    .collect()
}

/// Every child as it was applied (so the children are in sync).
fn with_children_in_sync(mut o: Observed) -> Observed {
    let d = decide(
        &o,
        &Paths::default(),
        None,
        k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
    );
    for s in d.steps {
        if let Step::Apply { name, body, .. } = s {
            match body["kind"].as_str() {
                Some("Service") => {
                    o.services
                        .insert(name, Arc::new(serde_json::from_value(body).unwrap()));
                }
                Some("Secret") => {
                    o.config_secret = Some(Arc::new(serde_json::from_value(body).unwrap()))
                }
                Some("PodDisruptionBudget") => {
                    o.disruption_budget = Some(Arc::new(serde_json::from_value(body).unwrap()))
                }
                _ => {}
            }
        }
    }
    o
}

/// Members of 2.10.26 made by `members`, in sync, with the spec now asking for 2.10.27.
fn upgraded(members: fn(&Observed) -> Vec<Arc<Pod>>) -> Observed {
    let mut o = with_children_in_sync(observed(stored(spec(3, "2.10.26"))));
    o.pods = members(&o);
    let c = stored(spec(3, "2.10.27"));
    Observed {
        cluster: at_read_time(&c),
        stored: Arc::new(c),
        ..o
    }
}

const EVENT: &str = "POST /apis/events.k8s.io/v1/namespaces/ns/events";

/// The lame-duck exec into member `i` before it is deleted (its preStop hook alone races
/// with SIGTERM). The mock cannot stream: the pod is deleted at once, without a Warning,
/// since its hook still signals.
fn lame_duck(i: u32) -> String {
    format!(
        "GET /api/v1/namespaces/ns/pods/legacy-{i}/exec?&stderr=true&container=nats\
         &command=%2Fnats-server&command=--signal&command=ldm%3D%2Fvar%2Frun%2Fnats%2Fnats.pid"
    )
}
const APPLY: &str = "(application/apply-patch+yaml)";

#[tokio::test]
async fn a_new_cluster_is_four_applies_three_pod_creations_and_one_event() {
    let seen = requests_of(&observed(stored(spec(3, "2.10.27")))).await;
    assert_eq!(
        seen,
        [
            format!("PATCH /api/v1/namespaces/ns/services/legacy {APPLY}"),
            format!("PATCH /api/v1/namespaces/ns/services/legacy-mgmt {APPLY}"),
            format!("PATCH /api/v1/namespaces/ns/secrets/legacy {APPLY}"),
            format!("PATCH /apis/policy/v1/namespaces/ns/poddisruptionbudgets/legacy {APPLY}"),
            "POST /api/v1/namespaces/ns/pods".to_string(),
            "POST /api/v1/namespaces/ns/pods".to_string(),
            "POST /api/v1/namespaces/ns/pods".to_string(),
            // One Event naming the three members.
            EVENT.to_string(),
        ]
    );
}

#[tokio::test]
async fn a_settled_cluster_sends_nothing() {
    let mut o = with_children_in_sync(observed(stored(spec(3, "2.10.27"))));
    o.pods = running_members(&o);
    assert!(requests_of(&o).await.is_empty());
}

#[tokio::test]
async fn a_scale_down_deletes_the_highest_member_only() {
    let mut o = with_children_in_sync(observed(stored(spec(5, "2.10.27"))));
    o.pods = running_members(&o);
    let mut c = o.stored.as_ref().clone();
    c.spec.size = 3;
    let mut o = with_children_in_sync(Observed {
        cluster: at_read_time(&c),
        stored: Arc::new(c),
        ..o
    });
    o.pods.sort_by_key(|p| p.metadata.name.clone());
    // The members that stay run with the smaller config (fewer routes): each gets its new
    // config hash, so its kubelet refreshes the config volume now, not on its next sync.
    let marked = |i: u32| {
        format!("PATCH /api/v1/namespaces/ns/pods/legacy-{i} (application/merge-patch+json)")
    };
    assert_eq!(
        requests_of(&o).await,
        [
            lame_duck(5),
            "DELETE /api/v1/namespaces/ns/pods/legacy-5".to_string(),
            EVENT.to_string(),
            marked(1),
            marked(2),
            marked(3),
        ]
    );
}

#[tokio::test]
async fn a_version_change_rolls_one_member_and_rewrites_nothing_else() {
    let o = upgraded(running_members);
    assert_eq!(
        requests_of(&o).await,
        [
            lame_duck(1),
            "DELETE /api/v1/namespaces/ns/pods/legacy-1".to_string(),
            EVENT.to_string()
        ]
    );
}

#[tokio::test]
async fn a_users_mistake_is_one_event_and_no_write() {
    let o = observed(stored(NatsClusterSpec {
        auth: Some(Auth {
            clients: Some(ClientAuth {
                secret: "users".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..spec(3, "2.10.27")
    }));
    let mut o = o;
    o.auth_secrets.insert(
        "users".into(),
        BTreeMap::from([("users.json".to_string(), b"[1]".to_vec())]),
    );
    assert_eq!(requests_of(&o).await, [EVENT.to_string()]);
}

/// Members as the Go operator made them: no preStop hook, its `/nats-server` command.
fn go_made(o: &Observed) -> Vec<Arc<Pod>> {
    running_members(o)
        .into_iter()
        .map(|p| {
            let mut p = p.as_ref().clone();
            if let Some(spec) = p.spec.as_mut() {
                spec.containers[0].lifecycle = None;
                spec.containers[0].command = Some(vec!["/nats-server".into()]);
            }
            Arc::new(p)
        })
        .collect()
}

#[tokio::test]
async fn a_member_without_a_hook_is_signalled_by_exec_and_deleted_with_a_warning_when_exec_fails() {
    let o = upgraded(go_made);
    // The mock answers the exec with 200, not 101 Switching Protocols, as an apiserver
    // whose node cannot stream would: the pod is deleted anyway, after a Warning.
    assert_eq!(
        requests_of(&o).await,
        [
            lame_duck(1),
            EVENT.to_string(),
            "DELETE /api/v1/namespaces/ns/pods/legacy-1".to_string(),
            EVENT.to_string(),
        ]
    );
}
