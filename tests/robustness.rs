//! Arbitrary JSON through decode → validate → default → convert: errors, never a panic.

use nats_operator::api::admission::{default_object, validate_object};
use nats_operator::api::convert::convert_object;
use proptest::prelude::*;
use serde_json::{Value, json};

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        ".*".prop_map(Value::from),
        prop::sample::select(vec![
            "\u{202e}",
            "💥",
            "\0",
            "spec.size",
            "nats://x:1",
            "-1",
            "Required"
        ])
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(8, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "size",
                    "version",
                    "tls",
                    "pod",
                    "auth",
                    "gatewayConfig",
                    "gateway",
                    "natsConfig",
                    "config",
                    "extraRoutes",
                    "template",
                    "spec",
                    "status",
                    "conditions",
                    "x"
                ]),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn nothing_panics(spec in arb_json(), status in arb_json(), api in prop::sample::select(vec!["nats.io/v1alpha2", "nats.io/v1beta1", "v1"]), kind in prop::sample::select(vec!["NatsCluster", "NatsServiceRole", "Pod"])) {
        let obj = json!({"apiVersion": api, "kind": kind, "metadata": {"name": "x", "annotations": {"nats.io/v1beta1-residual": "{\"spec\":{\"hash\":\"0\",\"patch\":{\"size\":3}}}"}}, "spec": spec, "status": status});
        let _ = validate_object(&obj, None);
        let _ = validate_object(&obj, Some(&obj));
        let (defaulted, _) = default_object(&obj, None);
        for to in ["nats.io/v1alpha2", "nats.io/v1beta1"] {
            if let Ok(converted) = convert_object(defaulted.clone(), to) {
                prop_assert_eq!(converted["apiVersion"].as_str(), Some(to));
            }
        }
        let _ = convert_object(spec, "nats.io/v1beta1");
    }
}
