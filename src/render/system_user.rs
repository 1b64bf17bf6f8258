//! The operator's identity in a JetStream cluster: a user of the system account, so the
//! operator can move stream replicas off a member before it goes and remove departed
//! peers from the meta group (`$JS.API.ACCOUNT.STREAM.MOVE`, `$JS.API.SERVER.REMOVE`:
//! system-account requests).
//!
//! The user is added to the rendered `nats.conf` without changing what any client sees:
//! - an open cluster (no users anywhere): only `accounts {"$SYS": {users: [...]}}`;
//!   nats-server then binds clients without credentials to `$G` through a hidden
//!   `no_auth_user` (servers since 2.3 keep existing connections over the reload);
//! - a cluster with `authorization.users` (a Secret, service roles, `config.merge`): the
//!   users stay in `$G`; a single `user`/`password` becomes a one-entry `users` list, as
//!   the server refuses a single user next to account users;
//! - a cluster with an `accounts` block: the user joins the system account's users
//!   (`system_account`, else `$SYS`).
//!
//! For the `jetstream.nats.io` assets of clusters with users, the same password also
//! logs in a JetStream-API-only user in every client account ([`jetstream_user_name`]:
//! `$G` through `authorization.users`, each other account in its own `users`): it may
//! publish only on `$JS.API.>` (and a domain's `$JS.*.API.>`) and subscribe only to
//! `_INBOX.>`, so it manages streams and consumers and reads no application subject. The
//! system user cannot do that for them: nats-server answers the system account only on
//! its `$JS.API.ACCOUNT.*`, `SERVER.REMOVE` and `META.LEADER.STEPDOWN` subjects. An open
//! cluster gets none: the operator connects there without credentials, into `$G`, as its
//! clients do.
//!
//! It cannot be added (and the operator says why, and keeps the old scale-down) with a
//! token (the server ignores a token once any user exists), an `include`d authorization
//! file (its contents are unknown here), JWT authentication (a user of the system
//! account must be signed by its key), or accounts without users on an open cluster
//! (no hidden `no_auth_user` then: clients without credentials would be refused).

use super::conf_writer::{Conf, ConfMap};

/// The user name of the operator's identity.
pub const SYSTEM_USER_NAME: &str = "nats-operator";
/// The system account's name when the config names none.
pub const DEFAULT_SYSTEM_ACCOUNT: &str = "$SYS";
/// The account of clients of `authorization.users` (and of open clusters).
pub const GLOBAL_ACCOUNT: &str = "$G";

/// The operator's JetStream-API-only user in `account` (`$G` included).
pub fn jetstream_user_name(account: &str) -> String {
    if account == GLOBAL_ACCOUNT {
        format!("{SYSTEM_USER_NAME}-js")
    } else {
        format!("{SYSTEM_USER_NAME}-js-{account}")
    }
}

/// The operator's system user: the name and the password from its Secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SystemUser {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for SystemUser {
    // The password never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemUser")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Whether the operator has a system identity in a cluster's `nats.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identity {
    /// The cluster does not need one (JetStream off, or servers before 2.2).
    NotNeeded,
    /// The Secret with its password does not exist yet.
    Pending,
    /// The user is in the config, in this account.
    InAccount(String),
    /// It cannot be added: why, in words for the user.
    Unsupported(String),
}

impl Identity {
    /// The account the operator's requests run in, when it has one.
    pub fn account(&self) -> Option<&str> {
        match self {
            Identity::InAccount(a) => Some(a),
            _ => None,
        }
    }
}

/// Adds `user` to the system account of the finished config `top`, or says why it
/// cannot without changing what clients see (and leaves `top` untouched then).
pub fn add(top: &mut ConfMap, user: &SystemUser) -> Identity {
    if top.get("operator").is_some() || top.get("trusted_keys").is_some() {
        return Identity::Unsupported(
            "JWT authentication: a system-account user must be signed by the system account's key, which the operator does not hold".into(),
        );
    }
    let authorization = match top.get("authorization") {
        None => None,
        Some(Conf::Map(m)) => Some(m.clone()),
        Some(_) => {
            return Identity::Unsupported("the authorization block is not a map".into());
        }
    };
    if let Some(a) = &authorization {
        if a.entries()
            .iter()
            .any(|(_, v)| matches!(v, Conf::Include(_)))
        {
            return Identity::Unsupported(
                "spec.auth.clientsAuthFile: the included file's users are not known to the operator, and a token there would stop working next to a system user".into(),
            );
        }
        if a.get("token").is_some() {
            return Identity::Unsupported(
                "token authentication: nats-server ignores a token once any user exists".into(),
            );
        }
    }
    let account = match top.get("system_account") {
        Some(Conf::Str(s)) => s.clone(),
        None => DEFAULT_SYSTEM_ACCOUNT.to_string(),
        Some(_) => return Identity::Unsupported("system_account is not a string".into()),
    };
    let accounts = match top.get("accounts") {
        None => ConfMap::new(),
        Some(Conf::Map(m)) => m.clone(),
        Some(_) => return Identity::Unsupported("the accounts block is not a map".into()),
    };
    let with_users = authorization
        .as_ref()
        .is_some_and(|a| a.get("users").is_some() || single_user(a).is_some())
        || accounts.entries().iter().any(|(_, v)| has_users(v));
    if !with_users {
        // Open: nats-server keeps it open only while `$G` and the system account are
        // the only accounts and no authorization block exists.
        let others: Vec<&str> = accounts
            .entries()
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| *k != "include" && *k != account)
            .collect();
        if !others.is_empty() {
            return Identity::Unsupported(format!(
                "the cluster is open but defines the account(s) {}: a system user would make nats-server require credentials",
                others.join(", ")
            ));
        }
        if authorization.is_some() {
            return Identity::Unsupported(
                "the cluster is open but has an authorization block without users: a system user would make nats-server require credentials".into(),
            );
        }
    }
    let mut accounts = accounts;
    let mut sys = match accounts.get(&account) {
        None => ConfMap::new(),
        Some(Conf::Map(m)) => m.clone(),
        Some(_) => {
            return Identity::Unsupported(format!(
                "accounts.{account} is not a map the operator can add a user to"
            ));
        }
    };
    let mut users = match sys.get("users") {
        None => Vec::new(),
        Some(Conf::List(l)) => l.clone(),
        Some(_) => {
            return Identity::Unsupported(format!("accounts.{account}.users is not a list"));
        }
    };
    put_user(&mut users, login(&user.username, &user.password));
    sys.set("users", Conf::List(users));
    accounts.set(&account, sys);
    if with_users {
        // Every client account but the system one (and `include`d ones, unknown here).
        let clients: Vec<(String, ConfMap)> = accounts
            .entries()
            .iter()
            .filter(|(k, _)| *k != "include" && *k != account)
            .filter_map(|(k, v)| match v {
                Conf::Map(m) => Some((k.clone(), m.clone())),
                _ => None,
            })
            .collect();
        for (name, mut a) in clients {
            let mut users = match a.get("users") {
                Some(Conf::List(l)) => l.clone(),
                _ => Vec::new(),
            };
            put_user(&mut users, jetstream_login(&name, &user.password));
            a.set("users", Conf::List(users));
            accounts.set(&name, a);
        }
    }
    if let Some(mut a) = authorization {
        if let Some((name, password)) = single_user(&a) {
            a.remove("user");
            a.remove("username");
            a.remove("password");
            let mut only = ConfMap::new();
            only.set("user", name);
            if let Some(p) = password {
                only.set("password", p);
            }
            a.set("users", Conf::List(vec![Conf::Map(only)]));
        }
        if let Some(Conf::List(l)) = a.get("users") {
            let mut users = l.clone();
            put_user(&mut users, jetstream_login(GLOBAL_ACCOUNT, &user.password));
            a.set("users", Conf::List(users));
        }
        top.set("authorization", a);
    }
    top.set("accounts", accounts);
    Identity::InAccount(account)
}

fn login(name: &str, password: &str) -> ConfMap {
    let mut entry = ConfMap::new();
    entry.set("user", name);
    entry.set("password", password);
    entry
}

/// The JetStream-API-only user of `account`.
fn jetstream_login(account: &str, password: &str) -> ConfMap {
    let mut entry = login(&jetstream_user_name(account), password);
    let list = |items: &[&str]| Conf::List(items.iter().map(|s| Conf::Str((*s).into())).collect());
    let mut permissions = ConfMap::new();
    permissions.set("publish", list(&["$JS.API.>", "$JS.*.API.>"]));
    permissions.set("subscribe", list(&["_INBOX.>"]));
    entry.set("permissions", permissions);
    entry
}

/// Adds `entry` to `users`, replacing an entry of the same name (ours, from before).
fn put_user(users: &mut Vec<Conf>, entry: ConfMap) {
    let name = match entry.get("user") {
        Some(Conf::Str(s)) => s.clone(),
        _ => String::new(),
    };
    users.retain(|u| user_name(u) != Some(name.as_str()));
    users.push(Conf::Map(entry));
}

/// The single `user`/`username` and `password` of an authorization block.
fn single_user(a: &ConfMap) -> Option<(Conf, Option<Conf>)> {
    let name = a.get("user").or_else(|| a.get("username"))?.clone();
    Some((name, a.get("password").cloned()))
}

fn has_users(account: &Conf) -> bool {
    match account {
        Conf::Map(m) => matches!(m.get("users"), Some(Conf::List(l)) if !l.is_empty()),
        _ => false,
    }
}

fn user_name(u: &Conf) -> Option<&str> {
    match u {
        Conf::Map(m) => match m.get("user").or_else(|| m.get("username")) {
            Some(Conf::Str(s)) => Some(s),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::conf_writer::{from_json, write_json_document};

    fn user() -> SystemUser {
        SystemUser {
            username: SYSTEM_USER_NAME.into(),
            password: "s3cret".into(),
        }
    }

    fn conf(json: serde_json::Value) -> ConfMap {
        match from_json(&json) {
            Some(Conf::Map(m)) => m,
            _ => ConfMap::new(),
        }
    }

    fn json(top: &ConfMap) -> serde_json::Value {
        let text = write_json_document(top).unwrap_or_default();
        serde_json::from_str(&text).unwrap_or_default()
    }

    #[test]
    fn an_open_cluster_gets_only_the_system_account() {
        let mut top = conf(serde_json::json!({"port": 4222}));
        assert_eq!(add(&mut top, &user()), Identity::InAccount("$SYS".into()));
        assert_eq!(
            json(&top),
            serde_json::json!({"port": 4222, "accounts": {"$SYS": {"users": [{"user": "nats-operator", "password": "s3cret"}]}}})
        );
    }

    /// The JetStream-API-only user of an account, as rendered.
    fn js_user(name: &str) -> serde_json::Value {
        serde_json::json!({"user": name, "password": "s3cret", "permissions": {
            "publish": ["$JS.API.>", "$JS.*.API.>"], "subscribe": ["_INBOX.>"]
        }})
    }

    #[test]
    fn users_stay_and_a_single_user_becomes_a_list() {
        let mut top =
            conf(serde_json::json!({"authorization": {"users": [{"user": "a", "password": "b"}]}}));
        assert!(matches!(add(&mut top, &user()), Identity::InAccount(_)));
        assert_eq!(
            json(&top)["authorization"],
            serde_json::json!({"users": [{"user": "a", "password": "b"}, js_user("nats-operator-js")]})
        );
        let mut top = conf(
            serde_json::json!({"authorization": {"username": "a", "password": "b", "timeout": 3}}),
        );
        assert!(matches!(add(&mut top, &user()), Identity::InAccount(_)));
        assert_eq!(
            json(&top)["authorization"],
            serde_json::json!({"timeout": 3, "users": [{"user": "a", "password": "b"}, js_user("nats-operator-js")]})
        );
        // Rendered again (a new password, a reconcile): one entry each, never two.
        add(&mut top, &user());
        assert_eq!(
            json(&top)["authorization"]["users"]
                .as_array()
                .map(Vec::len),
            Some(2)
        );
    }

    #[test]
    fn an_open_cluster_gets_no_jetstream_user() {
        let mut top = conf(serde_json::json!({"jetstream": {"store_dir": "/data"}}));
        add(&mut top, &user());
        assert_eq!(json(&top).get("authorization"), None);
        assert_eq!(json(&top)["accounts"].as_object().map(|a| a.len()), Some(1));
    }

    #[test]
    fn the_system_account_of_an_accounts_block_gets_the_user_once() {
        let mut top = conf(serde_json::json!({
            "system_account": "SYS",
            "accounts": {
                "A": {"users": [{"user": "a", "password": "a"}], "jetstream": "enabled"},
                "SYS": {"users": [{"user": "admin", "password": "x"}, {"user": "nats-operator", "password": "old"}]}
            }
        }));
        assert_eq!(add(&mut top, &user()), Identity::InAccount("SYS".into()));
        let j = json(&top);
        assert_eq!(
            j["accounts"]["A"]["users"],
            serde_json::json!([{"user": "a", "password": "a"}, js_user("nats-operator-js-A")])
        );
        assert_eq!(j["accounts"]["A"]["jetstream"], "enabled");
        assert_eq!(
            j["accounts"]["SYS"]["users"],
            serde_json::json!([{"user": "admin", "password": "x"}, {"user": "nats-operator", "password": "s3cret"}])
        );
    }

    #[test]
    fn what_the_server_would_break_is_refused_untouched() {
        for c in [
            serde_json::json!({"authorization": {"token": "t"}}),
            serde_json::json!({"operator": "/etc/nats-operator/op.jwt", "resolver": "MEMORY"}),
            serde_json::json!({"accounts": {"A": {"jetstream": "enabled"}}}),
        ] {
            let mut top = conf(c.clone());
            let before = top.clone();
            assert!(
                matches!(add(&mut top, &user()), Identity::Unsupported(_)),
                "{c}"
            );
            assert_eq!(top, before);
        }
        let mut top = ConfMap::new();
        let mut a = ConfMap::new();
        a.include("users.conf");
        top.set("authorization", a);
        assert!(
            matches!(add(&mut top, &user()), Identity::Unsupported(m) if m.contains("clientsAuthFile"))
        );
    }

    #[test]
    fn the_password_is_never_printed() {
        assert!(!format!("{:?}", user()).contains("s3cret"));
    }
}
