//! The enumerated fields of v1beta1 as Rust enums, so a value the API does not list
//! cannot reach `render` or the controller.
//!
//! On the wire each is a string, and `""` (Go's `omitempty`) means unset: fields are
//! `Option<Choice>` with `#[serde(with = "choices::optional")]`, and the CRD schema's
//! `enum` is the enum's own [`WIRE`](PullPolicy::WIRE) list, so the two cannot drift.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Declares a string enum whose variant names are its wire values.
macro_rules! choice {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// Every value, in the order the API documents them.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];
            /// The CRD schema's `enum`: `""` (unset) and every value.
            pub const WIRE: &'static [&'static str] = &["", $(stringify!($variant)),+];

            /// The value as written in a manifest.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => stringify!($variant)),+
                }
            }

            /// The value for `s`, if the API lists it (case-sensitive, as the apiserver is).
            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

choice! {
    /// When the kubelet pulls an image.
    PullPolicy {
        /// Pull on every start.
        Always,
        /// Pull only when the node lacks the image.
        IfNotPresent,
        /// Never pull: the node must have the image.
        Never,
    }
}

choice! {
    /// How members spread over nodes (`spec.pod.antiAffinity`).
    AntiAffinity {
        /// At most one member per node: a member without a free node stays Pending.
        Required,
        /// Spread when possible.
        Preferred,
    }
}

choice! {
    /// Where `server_name` comes from (`spec.config.serverName`).
    ServerNameSource {
        /// The pod's `SERVER_NAME` environment variable.
        FromEnv,
        /// The pod's name, stable per member.
        PodName,
    }
}

choice! {
    /// What happens to a member's volume on scale-down
    /// (`spec.jetstream.fileStorage.reclaimPolicy`).
    ReclaimPolicy {
        /// The claim stays; a member that comes back finds its data.
        Retain,
        /// The claim is owned by the pod and goes with it.
        Delete,
    }
}

choice! {
    /// Access mode of a member's volume (`spec.jetstream.fileStorage.accessMode`).
    AccessMode {
        /// Mounted by one node (the default).
        ReadWriteOnce,
        /// Mounted by one pod.
        ReadWriteOncePod,
        /// Mounted by many nodes.
        ReadWriteMany,
    }
}

/// Serde for `Option<Choice>` fields: `""` and `null` read as unset, `None` writes `""`
/// (fields skip `None`, so it is never written in practice).
pub mod optional {
    use serde::de::{DeserializeOwned, IntoDeserializer};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the value's string.
    pub fn serialize<S: Serializer, T: Serialize>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => v.serialize(s),
            None => s.serialize_str(""),
        }
    }

    /// Reads a string; `""` is unset, any other value must be one the enum lists.
    pub fn deserialize<'de, D: Deserializer<'de>, T: DeserializeOwned>(
        d: D,
    ) -> Result<Option<T>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => T::deserialize(s.into_deserializer()).map(Some),
        }
    }
}

/// Schema of an `Option<Choice>` field: a string (the `enum` is added by the field's
/// `extend`), never `nullable`, as the Go operator's strings were.
pub fn string_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({ "type": "string" })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    struct Holder {
        #[serde(default, with = "optional", skip_serializing_if = "Option::is_none")]
        p: Option<PullPolicy>,
    }

    #[test]
    fn empty_and_missing_are_unset_and_values_round_trip() {
        for raw in [r#"{}"#, r#"{"p":""}"#, r#"{"p":null}"#] {
            let h: Holder = serde_json::from_str(raw).unwrap();
            assert_eq!(h.p, None, "{raw}");
            assert_eq!(serde_json::to_string(&h).unwrap(), "{}");
        }
        for p in PullPolicy::ALL {
            let raw = format!(r#"{{"p":"{p}"}}"#);
            let h: Holder = serde_json::from_str(&raw).unwrap();
            assert_eq!(h.p, Some(*p));
            assert_eq!(serde_json::to_string(&h).unwrap(), raw);
        }
    }

    #[test]
    fn an_unlisted_value_is_refused_with_the_list() {
        let err = serde_json::from_str::<Holder>(r#"{"p":"always"}"#).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown variant `always`"), "{msg}");
        assert!(msg.contains("IfNotPresent"), "{msg}");
    }

    #[test]
    fn wire_lists_unset_then_every_value() {
        assert_eq!(PullPolicy::WIRE, ["", "Always", "IfNotPresent", "Never"]);
        assert_eq!(AntiAffinity::WIRE, ["", "Required", "Preferred"]);
        assert_eq!(ServerNameSource::WIRE, ["", "FromEnv", "PodName"]);
        assert_eq!(ReclaimPolicy::WIRE, ["", "Retain", "Delete"]);
        assert_eq!(
            AccessMode::WIRE,
            ["", "ReadWriteOnce", "ReadWriteOncePod", "ReadWriteMany"]
        );
        assert_eq!(
            AccessMode::parse("ReadWriteMany"),
            Some(AccessMode::ReadWriteMany)
        );
        assert_eq!(AccessMode::parse("readwritemany"), None);
    }
}
