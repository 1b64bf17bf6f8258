//! NATS users from NatsServiceRoles (`auth.clients.serviceAccounts`): a role `R` in the
//! cluster's namespace `M`, labelled `nats_cluster: C`, makes a user of every
//! ServiceAccount named `R` that the operator may see, with a TokenRequest token bound
//! to the Secret `R-C-bound-token` in the ServiceAccount's namespace as the password.
//!
//! What the Go operator got wrong, and what happens here instead (upstream #319, #248,
//! #263):
//! * **Usernames are unique.** The ServiceAccount in the cluster's own namespace is the
//!   user `R` (as before, so same-namespace setups keep working); one in another
//!   namespace `N` is `system:serviceaccount:N:R` (its Kubernetes username; `:` cannot
//!   occur in a role name, so the two forms never collide). The Go operator made one
//!   user `R` per namespace, an invalid config. The bound Secret holds the username
//!   under `username` next to `token`.
//! * **Which namespaces:** only those the operator manages (its namespace; the
//!   `--namespaces` list; every namespace when cluster-scoped). A role can narrow that
//!   with the annotation `nats.io/service-account-namespaces: "a,b"` (the cluster's own
//!   namespace is always included; `*` means all). Roles are only read from the
//!   cluster's namespace: a role elsewhere cannot grant access to a cluster it does not
//!   live with.
//! * **No cross-namespace owner references** (the apiserver's garbage collector treats
//!   them as absent and deletes the Secret, so the Go operator minted new tokens over
//!   and over). A Secret in the cluster's namespace is owned by its role, as before; one
//!   in another namespace is owned by its ServiceAccount (same namespace: deleting the
//!   account deletes the token) and labelled with the cluster's namespace, and the
//!   operator deletes it itself when the role, the cluster or service-account auth goes.
//! * **Audience** `nats://C.M.svc`: the cluster's Service, in the cluster's namespace
//!   (the Go operator used the account's namespace, a host that does not exist).
//! * **Secret names** stay `R-C-bound-token` (pods of the upstream examples mount them by
//!   name). Two clusters named `C` in different namespaces with a role `R` would both
//!   want that name in a shared namespace: the first keeps it, the second reports a
//!   `TokenSecretConflict` Warning Event and gets no user for that account.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::events::EventType;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::Scope;
use super::context::{Context, Error, event, kube_err};
use crate::api::v1alpha2::NatsServiceRole;
use crate::api::v1beta1::NatsCluster;
use crate::render::{ClusterMeta, ServiceRoleUser, labels};

/// Label of a bound-token Secret: the namespace of its NatsCluster.
pub const CLUSTER_NAMESPACE_LABEL: &str = "nats.io/cluster-namespace";
/// Annotation of a bound-token Secret: `<namespace>/<name>` of its NatsServiceRole.
pub const SERVICE_ROLE_ANNOTATION: &str = "nats.io/service-role";
/// Annotation of a NatsServiceRole: the other namespaces whose ServiceAccount may use
/// it (comma-separated; `*`, or no annotation, for every namespace the operator manages).
pub const ACCOUNT_NAMESPACES_ANNOTATION: &str = "nats.io/service-account-namespaces";
/// Key of the token in a bound-token Secret.
pub const TOKEN_KEY: &str = "token";
/// Key of the NATS username in a bound-token Secret.
pub const USERNAME_KEY: &str = "username";
const SUFFIX: &str = "-bound-token";

/// `<role>-<cluster>-bound-token`, as the Go operator named it.
pub fn token_secret_name(role: &str, cluster: &str) -> String {
    format!("{role}-{cluster}{SUFFIX}")
}

/// The NATS username of ServiceAccount `account_namespace/role` in a cluster of
/// `cluster_namespace`.
pub fn username(cluster_namespace: &str, account_namespace: &str, role: &str) -> String {
    if cluster_namespace == account_namespace {
        role.to_string()
    } else {
        format!("system:serviceaccount:{account_namespace}:{role}")
    }
}

/// The audience of the tokens of cluster `namespace/name`: its client Service.
pub fn audience(namespace: &str, name: &str) -> String {
    format!("nats://{name}.{namespace}.svc")
}

/// Whether `role` (in the cluster's namespace) may be used by the ServiceAccount of its
/// name in `account_namespace`.
pub fn allows_namespace(role: &NatsServiceRole, account_namespace: &str) -> bool {
    if role.namespace().as_deref() == Some(account_namespace) {
        return true;
    }
    match role.annotations().get(ACCOUNT_NAMESPACES_ANNOTATION) {
        None => true,
        Some(list) => list
            .split(',')
            .map(str::trim)
            .any(|n| n == "*" || n == account_namespace),
    }
}

/// The cluster `(namespace, name)` a bound-token Secret belongs to, or `None` when it is
/// not one: labels `app=nats` and `nats_cluster`, the `-bound-token` name, and our
/// cluster-namespace label (or, as the Go operator made them, an owning
/// NatsServiceRole, then the cluster is in the Secret's namespace).
pub fn bound_token_cluster(secret: &Secret) -> Option<(String, String)> {
    let l = secret.labels();
    let cluster = l.get(labels::CLUSTER_LABEL)?;
    if l.get("app").map(String::as_str) != Some(labels::APP) || !secret.name_any().ends_with(SUFFIX)
    {
        return None;
    }
    if let Some(ns) = l.get(CLUSTER_NAMESPACE_LABEL) {
        return Some((ns.clone(), cluster.clone()));
    }
    secret
        .owner_references()
        .iter()
        .any(|o| o.kind == "NatsServiceRole")
        .then(|| (secret.namespace().unwrap_or_default(), cluster.clone()))
}

/// The bound-token Secret for `role`'s user `account` in cluster `meta`, without its
/// token: what [`issue_token`] creates, and the metadata it keeps right.
pub fn token_secret(
    meta: &ClusterMeta,
    role: &NatsServiceRole,
    account: &ServiceAccount,
) -> Secret {
    let account_ns = account.namespace().unwrap_or_default();
    let role_name = role.name_any();
    let same_namespace = account_ns == meta.namespace;
    let owner = if same_namespace {
        role.controller_owner_ref(&())
    } else {
        Some(OwnerReference {
            api_version: "v1".into(),
            kind: "ServiceAccount".into(),
            name: account.name_any(),
            uid: account.uid().unwrap_or_default(),
            ..Default::default()
        })
    };
    let mut l = labels::selector(&meta.name);
    l.insert(CLUSTER_NAMESPACE_LABEL.into(), meta.namespace.clone());
    Secret {
        metadata: ObjectMeta {
            name: Some(token_secret_name(&role_name, &meta.name)),
            namespace: Some(account_ns.clone()),
            labels: Some(l),
            annotations: Some(BTreeMap::from([(
                SERVICE_ROLE_ANNOTATION.to_string(),
                format!("{}/{role_name}", meta.namespace),
            )])),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            USERNAME_KEY.to_string(),
            ByteString(username(&meta.namespace, &account_ns, &role_name).into_bytes()),
        )])),
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// What to do with the Secret of the name `desired` has, as it exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    /// No such Secret: create it, then mint.
    Missing,
    /// Ours and current, with this token.
    Current(String),
    /// Ours (or the Go operator's for this cluster) but its labels, owners, username or
    /// token need writing; `remint` when the token must be (re)issued.
    Outdated {
        /// Whether a new token is needed.
        remint: bool,
    },
    /// Another cluster's (or a user's) Secret of that name: leave it alone.
    Conflict(String),
}

/// Compares an existing Secret with the desired one of the role with uid `role_uid`
/// (pure).
pub fn token_state(
    desired: &Secret,
    existing: Option<&Secret>,
    role_uid: Option<&str>,
) -> TokenState {
    let Some(existing) = existing else {
        return TokenState::Missing;
    };
    let want_cluster = bound_token_cluster(desired);
    let have_cluster = bound_token_cluster(existing);
    let legacy = existing.labels().get(CLUSTER_NAMESPACE_LABEL).is_none();
    if have_cluster != want_cluster {
        // The Go operator's Secret for this role in another namespace: no
        // cluster-namespace label, owned (across namespaces) by this very role.
        let go_operator_cross_namespace = legacy
            && role_uid.is_some_and(|uid| {
                existing
                    .owner_references()
                    .iter()
                    .any(|o| o.kind == "NatsServiceRole" && o.uid == uid)
            });
        if !go_operator_cross_namespace {
            let owner = have_cluster
                .map(|(ns, name)| format!("belongs to NatsCluster {ns}/{name}"))
                .unwrap_or_else(|| "is not a bound-token Secret of the operator".into());
            return TokenState::Conflict(owner);
        }
    }
    let data = existing.data.clone().unwrap_or_default();
    let token = data
        .get(TOKEN_KEY)
        .map(|t| String::from_utf8_lossy(&t.0).to_string())
        .unwrap_or_default();
    // A token minted for another audience (the Go operator's cross-namespace ones).
    let wrong_audience = legacy && existing.namespace() != Some(desired_cluster_namespace(desired));
    let remint = token.is_empty() || wrong_audience;
    let same = |a: &Option<BTreeMap<String, String>>, b: &Option<BTreeMap<String, String>>| {
        a.iter()
            .flatten()
            .all(|(k, v)| b.as_ref().and_then(|b| b.get(k)) == Some(v))
    };
    let current = !remint
        && same(&desired.metadata.labels, &existing.metadata.labels)
        && same(
            &desired.metadata.annotations,
            &existing.metadata.annotations,
        )
        && desired.metadata.owner_references == existing.metadata.owner_references
        && desired
            .data
            .iter()
            .flatten()
            .all(|(k, v)| data.get(k) == Some(v));
    if current {
        TokenState::Current(token)
    } else {
        TokenState::Outdated { remint }
    }
}

fn desired_cluster_namespace(desired: &Secret) -> String {
    desired
        .labels()
        .get(CLUSTER_NAMESPACE_LABEL)
        .cloned()
        .unwrap_or_default()
}

/// Bound-token Secrets of cluster `namespace/name` among `secrets` that are not in
/// `keep` (`(namespace, name)` pairs): those to delete.
pub fn stale_tokens<'a>(
    secrets: &'a [Arc<Secret>],
    namespace: &str,
    name: &str,
    keep: &BTreeSet<(String, String)>,
) -> Vec<&'a Secret> {
    secrets
        .iter()
        .filter(|s| {
            bound_token_cluster(s).is_some_and(|(ns, c)| ns == namespace && c == name)
                && s.metadata.deletion_timestamp.is_none()
                && !keep.contains(&(s.namespace().unwrap_or_default(), s.name_any()))
        })
        .map(Arc::as_ref)
        .collect()
}

/// Bound-token Secrets among `secrets` whose NatsCluster is gone, for clusters in the
/// namespaces of `scope` (another operator may manage the rest).
pub fn orphaned_tokens<'a>(
    secrets: &'a [Arc<Secret>],
    scope: &Scope,
    cluster_exists: impl Fn(&str, &str) -> bool,
) -> Vec<&'a Secret> {
    secrets
        .iter()
        .filter(|s| {
            bound_token_cluster(s)
                .is_some_and(|(ns, c)| scope.covers(&ns) && !cluster_exists(&ns, &c))
                && s.metadata.deletion_timestamp.is_none()
        })
        .map(Arc::as_ref)
        .collect()
}

/// Deletes `secret` if it is still the object we saw (uid precondition).
pub async fn delete_token(client: &kube::Client, secret: &Secret) -> Result<bool, kube::Error> {
    let ns = secret.namespace().unwrap_or_default();
    let api: Api<Secret> = Api::namespaced(client.clone(), &ns);
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: secret.uid(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&secret.name_any(), &dp).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// The ServiceAccounts named `name` that a role of a cluster in `cluster_namespace` may
/// use, by namespace.
async fn accounts(
    ctx: &Context,
    cluster_namespace: &str,
    name: &str,
) -> Result<Vec<ServiceAccount>, Error> {
    let mut out = Vec::new();
    match ctx.scope.namespaces() {
        None => {
            let api: Api<ServiceAccount> = Api::all(ctx.client.clone());
            let lp = ListParams::default().fields(&format!("metadata.name={name}"));
            out = api
                .list(&lp)
                .await
                .map_err(kube_err(format!("list ServiceAccounts named {name}")))?
                .items;
        }
        Some(mut list) => {
            if !list.iter().any(|n| n == cluster_namespace) {
                list.push(cluster_namespace.to_string());
            }
            for ns in list {
                let api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
                if let Some(sa) = api
                    .get_opt(name)
                    .await
                    .map_err(kube_err(format!("get ServiceAccount {ns}/{name}")))?
                {
                    out.push(sa);
                }
            }
        }
    }
    out.sort_by_key(|sa| sa.namespace());
    Ok(out)
}

/// A ServiceAccount a role makes a user of, and its bound-token Secret: as it should
/// be and as it is.
#[derive(Debug, Clone)]
pub struct Binding {
    /// The NatsServiceRole.
    pub role: Arc<NatsServiceRole>,
    /// The ServiceAccount of the role's name.
    pub account: ServiceAccount,
    /// The bound-token Secret as it should be (without its token).
    pub desired: Secret,
    /// The Secret of that name as it exists.
    pub existing: Option<Secret>,
}

/// Reads (and only reads) the bindings of `meta`'s service roles: the roles from the
/// cache, their ServiceAccounts and the existing bound-token Secrets (from the cache;
/// from the API when the cache has not seen one yet).
pub async fn observe_bindings(ctx: &Context, meta: &ClusterMeta) -> Result<Vec<Binding>, Error> {
    let mut roles: Vec<Arc<NatsServiceRole>> = ctx
        .roles
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(meta.namespace.as_str()))
        .filter(|r| r.labels().get(labels::CLUSTER_LABEL) == Some(&meta.name))
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    roles.sort_by_key(|r| r.name_any());
    let mut out = Vec::new();
    for role in roles {
        for account in accounts(ctx, &meta.namespace, &role.name_any()).await? {
            let account_ns = account.namespace().unwrap_or_default();
            if !allows_namespace(&role, &account_ns) {
                continue;
            }
            let desired = token_secret(meta, &role, &account);
            let name = desired.name_any();
            let existing = match ctx
                .secrets
                .get(&kube::runtime::reflector::ObjectRef::new(&name).within(&account_ns))
            {
                Some(s) => Some(s.as_ref().clone()),
                None => Api::<Secret>::namespaced(ctx.client.clone(), &account_ns)
                    .get_opt(&name)
                    .await
                    .map_err(kube_err(format!("get Secret {account_ns}/{name}")))?,
            };
            out.push(Binding {
                role: role.clone(),
                account,
                desired,
                existing,
            });
        }
    }
    Ok(out)
}

/// A change to a bound-token Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenStep {
    /// Bring binding `binding`'s Secret in line (create it, or fix its metadata) and,
    /// when `mint`, request a new token into it.
    Issue {
        /// Index into the bindings.
        binding: usize,
        /// The Secret does not exist yet.
        create: bool,
        /// A new token is needed.
        mint: bool,
    },
    /// The Secret's name is taken by someone else's Secret: no user, and a Warning.
    Conflict {
        /// What to tell the user.
        message: String,
    },
}

/// What the bindings give: the users of `nats.conf`, the token Secrets in use and the
/// steps to take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tokens {
    /// Users whose token exists.
    pub users: Vec<ServiceRoleUser>,
    /// `(namespace, name)` of every bound-token Secret still needed.
    pub keep: BTreeSet<(String, String)>,
    /// Changes to make.
    pub steps: Vec<TokenStep>,
}

impl Tokens {
    /// Whether a user is still waiting for its token (the config waits with it, so a
    /// user is never dropped from a running cluster while its token is re-issued).
    pub fn waiting(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s, TokenStep::Issue { mint: true, .. }))
    }
}

/// Decides what the bindings of cluster `meta` need (pure).
pub fn decide_tokens(meta: &ClusterMeta, bindings: &[Binding]) -> Tokens {
    let mut out = Tokens::default();
    for (i, b) in bindings.iter().enumerate() {
        let account_ns = b.account.namespace().unwrap_or_default();
        let name = b.desired.name_any();
        let user = |token: String| ServiceRoleUser {
            username: username(&meta.namespace, &account_ns, &b.role.name_any()),
            token,
            permissions: b.role.spec.permissions.clone(),
        };
        match token_state(&b.desired, b.existing.as_ref(), b.role.uid().as_deref()) {
            TokenState::Current(token) => {
                out.keep.insert((account_ns.clone(), name));
                out.users.push(user(token));
            }
            TokenState::Conflict(why) => out.steps.push(TokenStep::Conflict {
                message: format!(
                    "no user for ServiceAccount {account_ns}/{}: Secret {account_ns}/{name} {why}",
                    b.account.name_any()
                ),
            }),
            TokenState::Missing => {
                out.keep.insert((account_ns.clone(), name));
                out.steps.push(TokenStep::Issue {
                    binding: i,
                    create: true,
                    mint: true,
                });
            }
            TokenState::Outdated { remint } => {
                out.keep.insert((account_ns.clone(), name));
                if !remint {
                    // Its token still works: the user stays while the metadata is fixed.
                    let token = b
                        .existing
                        .as_ref()
                        .and_then(|s| s.data.as_ref())
                        .and_then(|d| d.get(TOKEN_KEY))
                        .map(|t| String::from_utf8_lossy(&t.0).to_string())
                        .unwrap_or_default();
                    out.users.push(user(token));
                }
                out.steps.push(TokenStep::Issue {
                    binding: i,
                    create: false,
                    mint: remint,
                });
            }
        }
    }
    out
}

/// Carries out one [`TokenStep::Issue`]: creates or fixes the Secret, then mints a
/// token bound to it when asked. A Secret created meanwhile by someone else is left
/// for the next pass to look at.
pub async fn issue_token(
    ctx: &Context,
    cluster: &NatsCluster,
    meta: &ClusterMeta,
    binding: &Binding,
    create: bool,
    mint: bool,
) -> Result<(), Error> {
    let desired = &binding.desired;
    let account = &binding.account;
    let ns = desired.namespace().unwrap_or_default();
    let name = desired.name_any();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let secret = if create {
        match secrets.create(&PostParams::default(), desired).await {
            Ok(created) => created,
            Err(kube::Error::Api(e)) if e.code == 409 => return Ok(()),
            Err(e) => return Err(kube_err(format!("create Secret {ns}/{name}"))(e)),
        }
    } else {
        let patch = json!({
            "metadata": {
                "labels": desired.metadata.labels,
                "annotations": desired.metadata.annotations,
                "ownerReferences": desired.metadata.owner_references,
            },
            "data": desired.data,
        });
        secrets
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(kube_err(format!("update Secret {ns}/{name}")))?
    };
    if !mint {
        return Ok(());
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(vec![audience(&meta.namespace, &meta.name)]),
            bound_object_ref: Some(BoundObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Secret".into()),
                name: Some(name.clone()),
                uid: secret.metadata.uid.clone(),
            }),
            expiration_seconds: None,
        }),
        ..Default::default()
    };
    let sa_api: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let issued = sa_api
        .create_token_request(&account.name_any(), &PostParams::default(), &request)
        .await
        .map_err(kube_err(format!(
            "request a token for ServiceAccount {ns}/{}",
            account.name_any()
        )))?;
    let token = issued.status.and_then(|s| s.token).unwrap_or_default();
    if token.is_empty() {
        return Err(Error::Unexpected(format!(
            "the TokenRequest for ServiceAccount {ns}/{} returned no token",
            account.name_any()
        )));
    }
    let patch = json!({"data": {TOKEN_KEY: ByteString(token.into_bytes())}});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(kube_err(format!("store the token in Secret {ns}/{name}")))?;
    event(
        ctx,
        cluster,
        EventType::Normal,
        "TokenIssued",
        "IssueToken",
        format!(
            "issued a token for ServiceAccount {ns}/{} into Secret {ns}/{name}",
            account.name_any()
        ),
    )
    .await;
    Ok(())
}

/// Deletes the bound-token Secrets `stale` (no user needs them any more: their role,
/// ServiceAccount or service-account auth is gone); returns how many went.
pub async fn revoke_tokens(
    ctx: &Context,
    cluster: &NatsCluster,
    stale: &[Secret],
) -> Result<usize, Error> {
    let mut removed = 0;
    for secret in stale {
        let ns = secret.namespace().unwrap_or_default();
        let name = secret.name_any();
        if delete_token(&ctx.client, secret)
            .await
            .map_err(kube_err(format!("delete Secret {ns}/{name}")))?
        {
            removed += 1;
            event(
                ctx,
                cluster,
                EventType::Normal,
                "TokenRevoked",
                "RevokeToken",
                format!("deleted bound-token Secret {ns}/{name}: no user needs it"),
            )
            .await;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::v1alpha2::{Permissions, ServiceRoleSpec};

    fn meta() -> ClusterMeta {
        ClusterMeta {
            name: "nats".into(),
            namespace: "nats-system".into(),
            uid: Some("cluster-uid".into()),
        }
    }

    fn role(annotations: &[(&str, &str)]) -> NatsServiceRole {
        let mut r = NatsServiceRole::new(
            "nats-user",
            ServiceRoleSpec {
                permissions: Permissions::default(),
            },
        );
        r.metadata.namespace = Some("nats-system".into());
        r.metadata.uid = Some("role-uid".into());
        r.metadata.labels = Some(BTreeMap::from([("nats_cluster".into(), "nats".into())]));
        r.metadata.annotations = Some(
            annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        r
    }

    fn account(ns: &str) -> ServiceAccount {
        ServiceAccount {
            metadata: ObjectMeta {
                name: Some("nats-user".into()),
                namespace: Some(ns.into()),
                uid: Some(format!("sa-{ns}")),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn with_token(mut s: Secret, token: &str) -> Secret {
        s.data
            .get_or_insert_with(BTreeMap::new)
            .insert(TOKEN_KEY.into(), ByteString(token.as_bytes().to_vec()));
        s
    }

    #[test]
    fn usernames_are_unique_across_namespaces() {
        assert_eq!(username("m", "m", "r"), "r");
        assert_eq!(username("m", "n", "r"), "system:serviceaccount:n:r");
        assert_ne!(username("m", "a", "r"), username("m", "b", "r"));
        assert_eq!(audience("m", "c"), "nats://c.m.svc");
    }

    #[test]
    fn same_namespace_secret_is_owned_by_the_role() {
        let s = token_secret(&meta(), &role(&[]), &account("nats-system"));
        assert_eq!(s.name_any(), "nats-user-nats-bound-token");
        assert_eq!(s.namespace().as_deref(), Some("nats-system"));
        let owners = s.owner_references();
        assert_eq!(owners.len(), 1);
        assert_eq!(owners[0].kind, "NatsServiceRole");
        assert_eq!(owners[0].uid, "role-uid");
        assert_eq!(owners[0].controller, Some(true));
        assert_eq!(
            bound_token_cluster(&s),
            Some(("nats-system".into(), "nats".into()))
        );
        assert_eq!(
            s.data.as_ref().and_then(|d| d.get(USERNAME_KEY)),
            Some(&ByteString(b"nats-user".to_vec()))
        );
    }

    #[test]
    fn cross_namespace_secret_has_no_cross_namespace_owner() {
        let s = token_secret(&meta(), &role(&[]), &account("my-app-ns"));
        assert_eq!(s.namespace().as_deref(), Some("my-app-ns"));
        for o in s.owner_references() {
            assert_eq!(o.kind, "ServiceAccount", "only same-namespace owners");
            assert_eq!(o.uid, "sa-my-app-ns");
            assert_eq!(o.controller, None);
        }
        assert_eq!(
            s.labels().get(CLUSTER_NAMESPACE_LABEL).map(String::as_str),
            Some("nats-system")
        );
        assert_eq!(
            s.annotations()
                .get(SERVICE_ROLE_ANNOTATION)
                .map(String::as_str),
            Some("nats-system/nats-user")
        );
        assert_eq!(
            bound_token_cluster(&s),
            Some(("nats-system".into(), "nats".into()))
        );
        assert_eq!(
            s.data.as_ref().and_then(|d| d.get(USERNAME_KEY)),
            Some(&ByteString(
                b"system:serviceaccount:my-app-ns:nats-user".to_vec()
            ))
        );
    }

    #[test]
    fn namespaces_a_role_allows() {
        let open = role(&[]);
        assert!(allows_namespace(&open, "nats-system"));
        assert!(allows_namespace(&open, "anywhere"));
        let narrow = role(&[(ACCOUNT_NAMESPACES_ANNOTATION, "a, b")]);
        assert!(
            allows_namespace(&narrow, "nats-system"),
            "its own namespace"
        );
        assert!(allows_namespace(&narrow, "b"));
        assert!(!allows_namespace(&narrow, "c"));
        let none = role(&[(ACCOUNT_NAMESPACES_ANNOTATION, "")]);
        assert!(!allows_namespace(&none, "a"));
        assert!(allows_namespace(&none, "nats-system"));
        let all = role(&[(ACCOUNT_NAMESPACES_ANNOTATION, "*")]);
        assert!(allows_namespace(&all, "z"));
    }

    #[test]
    fn token_states() {
        let desired = token_secret(&meta(), &role(&[]), &account("my-app-ns"));
        assert_eq!(token_state(&desired, None, None), TokenState::Missing);
        let current = with_token(desired.clone(), "jwt");
        assert_eq!(
            token_state(&desired, Some(&current), Some("role-uid")),
            TokenState::Current("jwt".into())
        );
        // Extra labels, annotations or keys of the user's are fine.
        let mut decorated = current.clone();
        decorated.labels_mut().insert("team".into(), "a".into());
        decorated
            .annotations_mut()
            .insert("note".into(), "x".into());
        assert_eq!(
            token_state(&desired, Some(&decorated), Some("role-uid")),
            TokenState::Current("jwt".into())
        );
        // Created but never got its token (the operator stopped in between).
        assert_eq!(
            token_state(&desired, Some(&desired), Some("role-uid")),
            TokenState::Outdated { remint: true }
        );
        // The username key went missing: rewritten, the token stays.
        let mut no_user = current.clone();
        no_user.data.as_mut().map(|d| d.remove(USERNAME_KEY));
        assert_eq!(
            token_state(&desired, Some(&no_user), Some("role-uid")),
            TokenState::Outdated { remint: false }
        );
    }

    #[test]
    fn another_clusters_secret_is_a_conflict() {
        let desired = token_secret(&meta(), &role(&[]), &account("shared"));
        let mut other_meta = meta();
        other_meta.namespace = "elsewhere".into();
        let mut other_role = role(&[]);
        other_role.metadata.namespace = Some("elsewhere".into());
        let other = with_token(
            token_secret(&other_meta, &other_role, &account("shared")),
            "t",
        );
        assert!(matches!(
            token_state(&desired, Some(&other), Some("role-uid")),
            TokenState::Conflict(w) if w.contains("elsewhere/nats")
        ));
        let users_own = Secret {
            metadata: ObjectMeta {
                name: desired.metadata.name.clone(),
                namespace: desired.metadata.namespace.clone(),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(
            token_state(&desired, Some(&users_own), Some("role-uid")),
            TokenState::Conflict(_)
        ));
    }

    #[test]
    fn go_operator_secrets_are_adopted() {
        // Same namespace: owned by the role, no cluster-namespace label: the token (same
        // audience) stays, the metadata is completed.
        let desired = token_secret(&meta(), &role(&[]), &account("nats-system"));
        let mut legacy = with_token(desired.clone(), "old");
        legacy.labels_mut().remove(CLUSTER_NAMESPACE_LABEL);
        legacy.metadata.annotations = None;
        legacy.data.as_mut().map(|d| d.remove(USERNAME_KEY));
        assert_eq!(
            token_state(&desired, Some(&legacy), Some("role-uid")),
            TokenState::Outdated { remint: false }
        );
        // Another namespace: a cross-namespace owner and the wrong audience: re-minted.
        let desired = token_secret(&meta(), &role(&[]), &account("my-app-ns"));
        let mut legacy = with_token(desired.clone(), "old");
        legacy.labels_mut().remove(CLUSTER_NAMESPACE_LABEL);
        legacy.metadata.owner_references = role(&[]).controller_owner_ref(&()).map(|o| vec![o]);
        assert_eq!(
            token_state(&desired, Some(&legacy), Some("role-uid")),
            TokenState::Outdated { remint: true }
        );
    }

    #[test]
    fn stale_and_orphaned_tokens() {
        let m = meta();
        let a = Arc::new(with_token(token_secret(&m, &role(&[]), &account("a")), "t"));
        let b = Arc::new(with_token(token_secret(&m, &role(&[]), &account("b")), "t"));
        let own = Arc::new(with_token(
            token_secret(&m, &role(&[]), &account("nats-system")),
            "t",
        ));
        let mut foreign = (*a).clone();
        foreign
            .labels_mut()
            .insert(CLUSTER_NAMESPACE_LABEL.into(), "x".into());
        let foreign = Arc::new(foreign);
        let all = vec![a.clone(), b.clone(), own.clone(), foreign.clone()];
        let keep = BTreeSet::from([("a".to_string(), a.name_any())]);
        let stale: Vec<String> = stale_tokens(&all, "nats-system", "nats", &keep)
            .iter()
            .map(|s| s.namespace().unwrap_or_default())
            .collect();
        assert_eq!(stale, vec!["b", "nats-system"]);

        let gone = |_: &str, _: &str| false;
        let orphans = orphaned_tokens(&all, &Scope::Cluster, gone);
        assert_eq!(orphans.len(), 4);
        let scoped = Scope::Namespaces(vec!["nats-system".into(), "a".into()]);
        let orphans: Vec<String> = orphaned_tokens(&all, &scoped, gone)
            .iter()
            .map(|s| s.namespace().unwrap_or_default())
            .collect();
        assert_eq!(
            orphans,
            vec!["a", "b", "nats-system"],
            "only tokens of clusters in the scope"
        );
        let exists = |ns: &str, c: &str| ns == "nats-system" && c == "nats";
        assert_eq!(orphaned_tokens(&all, &Scope::Cluster, exists).len(), 1);
    }
}
