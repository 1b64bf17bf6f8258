//! Apply: carries out a [`Decision`]'s steps in order and publishes its Events. No
//! decision is made here; what the API answers that only a person can fix (a pod
//! refused by admission, a volume that cannot grow) is reported back as `Degraded`.

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;

use super::context::{Context, Error, MANAGER, event, kube_err, member_event};
use super::decide::{ChildKind, Decision, Step};
use super::lame_duck;
use super::observe::Observed;
use super::plan::DeleteReason;
use super::service_roles;
use super::storage::VolumeAction;
use crate::render::CONFIG_HASH_ANNOTATION;
use crate::render::system_user::{SYSTEM_USER_NAME, SystemUser};
use kube::runtime::events::EventType;

/// What the writes did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Writes made.
    pub writes: usize,
    /// A refusal only the user can fix: `(reason, message)`.
    pub degraded: Option<(String, String)>,
    /// Claims grown, with their new request.
    pub expanded: Vec<(String, String)>,
}

fn resource(kind: ChildKind) -> ApiResource {
    match kind {
        ChildKind::Service => ApiResource::erase::<Service>(&()),
        ChildKind::Secret => ApiResource::erase::<Secret>(&()),
        ChildKind::PodDisruptionBudget => ApiResource::erase::<PodDisruptionBudget>(&()),
        ChildKind::PodMonitor => crate::render::monitor::pod_monitor_resource(),
    }
}

fn not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// Carries out `d` for `o`.
pub async fn apply(ctx: &Context, o: &Observed, d: &Decision) -> Result<Outcome, Error> {
    let cluster = o.stored.as_ref();
    let mut out = Outcome::default();
    for n in &d.notices {
        event(ctx, cluster, n.type_(), &n.reason, n.action, n.note.clone()).await;
    }
    let Ok(meta) = &o.meta else { return Ok(out) };
    let uid = meta.uid.clone().unwrap_or_default();
    let remember = |f: &dyn Fn(&mut super::context::Recent)| {
        f(&mut ctx.recent.lock().unwrap_or_else(|e| e.into_inner()));
    };
    let ns = meta.namespace.as_str();
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
    let (mut grown, mut deleted, mut created) = (Vec::new(), Vec::new(), Vec::new());
    let mut members_refused = false;
    for step in &d.steps {
        match step {
            Step::IssueToken {
                binding,
                create,
                mint,
            } => {
                if let Some(b) = o.bindings.get(*binding) {
                    service_roles::issue_token(ctx, cluster, meta, b, *create, *mint).await?;
                    out.writes += 1;
                }
            }
            Step::Apply {
                kind,
                name,
                body,
                notice,
            } => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(ctx.client.clone(), ns, &resource(*kind));
                let what = format!("apply {} {ns}/{name}", kind.name());
                match api
                    .patch(
                        name,
                        &PatchParams::apply(MANAGER).force(),
                        &Patch::Apply(body),
                    )
                    .await
                {
                    Ok(_) => {
                        out.writes += 1;
                        let hash = body
                            .pointer("/metadata/annotations")
                            .and_then(|a| a.get(super::context::APPLIED_ANNOTATION))
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or_default();
                        remember(&|r| r.applied(&uid, &format!("{}/{name}", kind.name()), hash));
                        if let Some(n) = notice {
                            event(ctx, cluster, n.type_(), &n.reason, n.action, n.note.clone())
                                .await;
                        }
                    }
                    // The PodMonitor kind went away since it was observed.
                    Err(e) if *kind == ChildKind::PodMonitor && not_found(&e) => {}
                    Err(e) => return Err(kube_err(what)(e)),
                }
            }
            Step::Delete { kind, name } => {
                let api: Api<DynamicObject> =
                    Api::namespaced_with(ctx.client.clone(), ns, &resource(*kind));
                match api.delete(name, &DeleteParams::default()).await {
                    Ok(_) => out.writes += 1,
                    Err(e) if not_found(&e) => {}
                    Err(e) => {
                        return Err(kube_err(format!("delete {} {ns}/{name}", kind.name()))(e));
                    }
                }
            }
            Step::RevokeTokens(stale) => {
                out.writes += service_roles::revoke_tokens(ctx, cluster, stale).await?;
            }
            Step::CreateClaim(claim) => {
                let name = claim.metadata.name.clone().unwrap_or_default();
                match claims.create(&PostParams::default(), claim).await {
                    Ok(_) => out.writes += 1,
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(kube_err(format!("create PVC {ns}/{name}"))(e)),
                }
            }
            Step::CreatePod(pod) => {
                if members_refused {
                    continue;
                }
                let name = pod.metadata.name.clone().unwrap_or_default();
                match pods.create(&PostParams::default(), pod).await {
                    Ok(_) => {
                        out.writes += 1;
                        remember(&|r| r.created(&uid, &name));
                        created.push(name);
                    }
                    // Still terminating from a previous replacement: next pass.
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    // Refused by admission (a missing ServiceAccount named in the
                    // template, a policy): the user must act; say so in status.
                    Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                        let msg = format!("member {name} refused: {}", e.message);
                        event(
                            ctx,
                            cluster,
                            EventType::Warning,
                            "MemberRejected",
                            "Create",
                            msg.clone(),
                        )
                        .await;
                        out.degraded = Some(("MemberRejected".into(), msg));
                        members_refused = true;
                    }
                    Err(e) => return Err(kube_err(format!("create Pod {ns}/{name}"))(e)),
                }
            }
            Step::SignalLameDuck {
                pod,
                command,
                reason,
                then_delete: true,
            } => {
                // Its own hook signals again (a no-op) if the exec could not run.
                if let Err(why) = lame_duck::signal(&pods, pod, command).await {
                    tracing::debug!(%pod, %why, "lame duck left to the preStop hook");
                } else {
                    tokio::time::sleep(lame_duck::SETTLE).await;
                }
                delete_pod(ctx, cluster, &pods, ns, pod, *reason, true).await?;
                remember(&|r| r.deleted(&uid, pod));
                out.writes += 1;
            }
            Step::SignalLameDuck {
                pod,
                command,
                reason,
                then_delete: false,
            } => match lame_duck::signal(&pods, pod, command).await {
                Ok(()) => {
                    let patch = json!({"metadata": {"annotations": {
                        lame_duck::SINCE_ANNOTATION: Timestamp::now().to_string(),
                    }}});
                    match pods
                        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        Ok(_) => out.writes += 1,
                        Err(e) if not_found(&e) => {}
                        Err(e) => return Err(kube_err(format!("annotate Pod {ns}/{pod}"))(e)),
                    }
                    member_event(
                        ctx,
                        cluster,
                        pod,
                        EventType::Normal,
                        "LameDuck",
                        "Delete",
                        format!(
                            "{pod} has no preStop hook (a pod made by the Go operator): its server was put into lame duck; the pod is deleted when it has drained"
                        ),
                    )
                    .await;
                }
                Err(why) => {
                    let hint = if why.contains("forbidden") {
                        " (grant the operator pods/exec, as manifests/ does, to drain them first)"
                    } else {
                        ""
                    };
                    member_event(
                        ctx,
                        cluster,
                        pod,
                        EventType::Warning,
                        "LameDuckUnavailable",
                        "Delete",
                        format!(
                            "could not put {pod} into lame duck ({why}); it is deleted without it and its clients reconnect to the other members{hint}"
                        ),
                    )
                    .await;
                    delete_pod(ctx, cluster, &pods, ns, pod, *reason, false).await?;
                    remember(&|r| r.deleted(&uid, pod));
                    out.writes += 1;
                }
            },
            Step::DeletePod { pod, reason } => {
                delete_pod(ctx, cluster, &pods, ns, pod, *reason, true).await?;
                remember(&|r| r.deleted(&uid, pod));
                out.writes += 1;
            }
            Step::Volume(VolumeAction::Expand { claim, from, to }) => {
                let patch = json!({"spec": {"resources": {"requests": {"storage": to}}}});
                match claims
                    .patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => {
                        out.writes += 1;
                        out.expanded.push((claim.clone(), to.clone()));
                        grown.push(format!("{claim} {from} -> {to}"));
                    }
                    Err(kube::Error::Api(e)) if e.code == 403 || e.code == 422 => {
                        let msg = format!(
                            "cannot grow {claim} from {from} to {to}: {} (spec.jetstream.fileStorage.size needs a storage class with allowVolumeExpansion, or set it back to status.volumeSize)",
                            e.message
                        );
                        event(
                            ctx,
                            cluster,
                            EventType::Warning,
                            "VolumeNotExpanded",
                            "Expand",
                            msg.clone(),
                        )
                        .await;
                        out.degraded = Some(("VolumeNotExpanded".into(), msg));
                    }
                    Err(e) => return Err(kube_err(format!("expand PVC {ns}/{claim}"))(e)),
                }
            }
            Step::Volume(VolumeAction::Delete { claim }) => {
                match claims.delete(claim, &DeleteParams::default()).await {
                    Ok(_) => out.writes += 1,
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(kube_err(format!("delete PVC {ns}/{claim}"))(e)),
                }
                deleted.push(claim.as_str());
            }
            Step::IssueSystemUser => {
                let user = SystemUser {
                    username: SYSTEM_USER_NAME.into(),
                    password: new_password()?,
                };
                let secret = crate::render::secret::system_user_secret(meta, &user);
                let name = meta.system_user_secret();
                let body = crate::render::desired::typed(&secret, "v1", "Secret");
                let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
                api.patch(
                    &name,
                    &PatchParams::apply(MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
                .map_err(kube_err(format!("apply Secret {ns}/{name}")))?;
                out.writes += 1;
            }
            Step::MoveStreams { server, streams } => {
                let result = async {
                    let client = system_client(o, server).await?;
                    let mut failed = Vec::new();
                    for (account, stream) in streams {
                        if let Err(e) = client.move_stream(account, stream, server).await {
                            failed.push(e);
                        }
                    }
                    if failed.is_empty() {
                        Ok(())
                    } else {
                        Err(failed.join("; "))
                    }
                }
                .await;
                match result {
                    Ok(()) => {
                        let names: Vec<String> =
                            streams.iter().map(|(a, s)| format!("{a}/{s}")).collect();
                        member_event(
                            ctx,
                            cluster,
                            server,
                            EventType::Normal,
                            "MovingStreams",
                            "ScaleDown",
                            format!(
                                "moving the replicas of {} off {server} before it is removed",
                                names.join(", ")
                            ),
                        )
                        .await;
                    }
                    Err(why) => {
                        // Asked again on the next pass; the wait turns Degraded after
                        // catchUpTimeout.
                        tracing::info!(%why, "stream move not started");
                    }
                }
            }
            Step::RemovePeer { server } => {
                let result = async {
                    let client = system_client(o, server).await?;
                    client.remove_server(server).await
                }
                .await;
                match result {
                    Ok(()) => {
                        event(
                            ctx,
                            cluster,
                            EventType::Normal,
                            "PeerRemoved",
                            "ScaleDown",
                            format!(
                                "removed the departed server {server} from the JetStream meta group"
                            ),
                        )
                        .await;
                    }
                    Err(why) => tracing::info!(%why, "meta peer not removed"),
                }
            }
            Step::MarkConfig { pod, hash } => {
                let patch = json!({"metadata": {"annotations": {CONFIG_HASH_ANNOTATION: hash}}});
                match pods
                    .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => out.writes += 1,
                    Err(e) if not_found(&e) => {}
                    Err(e) => return Err(kube_err(format!("annotate Pod {ns}/{pod}"))(e)),
                }
            }
        }
    }
    // One Event per kind of change and pass, naming every member or claim (the recorder
    // folds Events of the same reason into a series: one per pod would be one write per
    // pod and show only the first name).
    if !created.is_empty() {
        let note = format!("created member(s) {}", created.join(", "));
        event(
            ctx,
            cluster,
            EventType::Normal,
            "MemberCreated",
            "Create",
            note,
        )
        .await;
    }
    if !grown.is_empty() {
        let note = format!("storage requests grown: {}", grown.join(", "));
        event(
            ctx,
            cluster,
            EventType::Normal,
            "VolumeExpanded",
            "Expand",
            note,
        )
        .await;
    }
    if !deleted.is_empty() {
        let note = format!(
            "deleted {} (their members are gone; reclaimPolicy is Delete)",
            deleted.join(", ")
        );
        event(
            ctx,
            cluster,
            EventType::Normal,
            "VolumeDeleted",
            "Delete",
            note,
        )
        .await;
    }
    Ok(out)
}

async fn delete_pod(
    ctx: &Context,
    cluster: &crate::api::v1beta1::NatsCluster,
    pods: &Api<Pod>,
    ns: &str,
    pod: &str,
    reason: DeleteReason,
    lame_duck: bool,
) -> Result<(), Error> {
    let why = match reason {
        DeleteReason::Ended => "it stopped; it is replaced",
        DeleteReason::ScaleDown => "scaling down",
        DeleteReason::Rollout => "its spec is out of date; it is replaced",
        DeleteReason::Stray => "it is not a member of this cluster",
    };
    let why = match reason {
        DeleteReason::ScaleDown | DeleteReason::Rollout if lame_duck => {
            format!("{why} (lame duck first)")
        }
        _ => why.to_string(),
    };
    match pods.delete(pod, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(e) if not_found(&e) => {}
        Err(e) => return Err(kube_err(format!("delete Pod {ns}/{pod}"))(e)),
    }
    member_event(
        ctx,
        cluster,
        pod,
        EventType::Normal,
        "MemberDeleted",
        "Delete",
        format!("deleted {pod}: {why}"),
    )
    .await;
    Ok(())
}

/// 32 random bytes as 43 URL-safe base64 characters: nothing in them needs quoting.
fn new_password() -> Result<String, Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Unexpected(format!("no OS randomness: {e}")))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// `ip:4222` of a member (IPv6 in brackets): where clients reach it.
pub fn client_address(ip: &str) -> String {
    let port = crate::api::consts::CLIENT_PORT;
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// A system-user connection to the running members other than `except`.
async fn system_client(
    o: &Observed,
    except: &str,
) -> Result<super::system_account::SystemClient, String> {
    let Some(user) = o
        .system_user_secret
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .map(|d| d.iter().map(|(k, v)| (k.clone(), v.0.clone())).collect())
        .and_then(|d: crate::render::inputs::SecretData| crate::render::inputs::system_user(&d))
    else {
        return Err("the operator's system user is not there yet".into());
    };
    let addresses: Vec<String> = o
        .pods
        .iter()
        .filter(|p| {
            kube::ResourceExt::name_any(p.as_ref()) != except
                && p.metadata.deletion_timestamp.is_none()
        })
        .filter_map(|p| p.status.as_ref()?.pod_ip.as_deref().map(client_address))
        .collect();
    let tls = o
        .cluster
        .spec
        .tls
        .as_ref()
        .and_then(|t| t.client.as_ref())
        .is_some_and(|c| !c.secret.is_empty());
    super::system_account::SystemClient::connect(&addresses, &user, tls).await
}
