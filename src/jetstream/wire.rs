//! String enums of the `jetstream.nats.io` API: each variant has NACK's wire value (what a
//! manifest says) and the JetStream API's value (what the server is sent).

/// Declares a string enum with its manifest values, its JetStream API values and its
/// default. The CRD schema's `enum` is [`WIRE`](crate::jetstream::v1beta2::Retention::WIRE).
macro_rules! wire_enum {
    (
        $(#[$doc:meta])*
        $name:ident default $default:ident {
            $($(#[$vdoc:meta])* $variant:ident = $wire:literal => $server:literal),+ $(,)?
        }
    ) => {
        $(#[$doc])*
        #[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $wire)] $variant),+
        }

        impl Default for $name {
            fn default() -> Self {
                Self::$default
            }
        }

        impl $name {
            /// Every value a manifest may give, in NACK's order.
            pub const WIRE: &'static [&'static str] = &[$($wire),+];

            /// The value as a manifest writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire),+
                }
            }

            /// The value the JetStream API uses (`""`: the server's default).
            pub fn server(self) -> &'static str {
                match self {
                    $(Self::$variant => $server),+
                }
            }

            /// Schema: a string limited to [`Self::WIRE`] (also for `Option` fields, which
            /// stay non-nullable as NACK's are).
            pub fn schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({ "type": "string", "enum": Self::WIRE })
            }
        }

        impl schemars::JsonSchema for $name {
            fn inline_schema() -> bool {
                true
            }

            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }

            fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
                Self::schema(generator)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub(crate) use wire_enum;
