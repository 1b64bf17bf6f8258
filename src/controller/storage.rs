//! The members' JetStream volumes after creation: growing them when
//! `spec.jetstream.fileStorage.size` grows, and removing those of departed members
//! when `reclaimPolicy` is `Delete`. Pure: the reconciler lists the cluster's claims,
//! calls [`volume_actions`] and carries the actions out.

use crate::api::names::parse_quantity;

/// A member's claim as the reconciler sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Claim name (`<cluster>-data-<pod>`).
    pub name: String,
    /// Member index of the pod it belongs to (`None` for a name we did not make).
    pub index: Option<u32>,
    /// `spec.resources.requests.storage`.
    pub requested: Option<String>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
}

/// One change to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeAction {
    /// Raise the claim's storage request to the spec's size (the storage class's
    /// resizer does the rest; the apiserver refuses when the class can't expand).
    Expand {
        /// Claim name.
        claim: String,
        /// From this request.
        from: String,
        /// To this one.
        to: String,
    },
    /// Delete the claim of a member that is gone (`reclaimPolicy: Delete`).
    Delete {
        /// Claim name.
        claim: String,
    },
}

/// Decides what to do with the claims.
///
/// - `size`: the spec's volume size (`None`: nothing to grow);
/// - `members`: `spec.size`; `pods`: indexes of member pods that still exist (a claim
///   is never deleted under a pod, even a terminating one);
/// - `delete_departed`: `reclaimPolicy: Delete`.
pub fn volume_actions(
    claims: &[Claim],
    size: Option<&str>,
    members: u32,
    pods: &[u32],
    delete_departed: bool,
) -> Vec<VolumeAction> {
    let want = size.and_then(|s| parse_quantity(s).map(|b| (s, b)));
    let mut out = Vec::new();
    for c in claims.iter().filter(|c| !c.terminating) {
        let Some(i) = c.index else { continue };
        if i > members {
            if delete_departed && !pods.contains(&i) {
                out.push(VolumeAction::Delete {
                    claim: c.name.clone(),
                });
            }
            continue;
        }
        if let (Some((to, want_bytes)), Some(from)) = (want, c.requested.as_deref())
            && parse_quantity(from).is_some_and(|have| have < want_bytes)
        {
            out.push(VolumeAction::Expand {
                claim: c.name.clone(),
                from: from.to_string(),
                to: to.to_string(),
            });
        }
    }
    out
}

/// The largest of `requests` (storage quantities; unparsable ones are ignored), as
/// written, or empty when there is none: the floor below which
/// `spec.jetstream.fileStorage.size` cannot go (status `volumeSize`).
pub fn largest_request<'a>(requests: impl IntoIterator<Item = &'a str>) -> String {
    requests
        .into_iter()
        .filter_map(|r| parse_quantity(r).map(|b| (b, r)))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, r)| r.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_request_compares_quantities_not_text() {
        assert_eq!(largest_request(["1Gi", "2048Mi", "900M"]), "2048Mi");
        assert_eq!(largest_request(["10Gi", "9Gi", "junk"]), "10Gi");
        assert_eq!(largest_request([]), "");
    }

    fn claim(i: u32, req: &str) -> Claim {
        Claim {
            name: format!("c-data-c-{i}"),
            index: Some(i),
            requested: Some(req.into()),
            terminating: false,
        }
    }

    #[test]
    fn growing_the_size_expands_every_member_claim_once() {
        let claims = [claim(1, "1Gi"), claim(2, "1Gi"), claim(3, "2Gi")];
        let got = volume_actions(&claims, Some("2Gi"), 3, &[1, 2, 3], false);
        assert_eq!(
            got,
            vec![
                VolumeAction::Expand {
                    claim: "c-data-c-1".into(),
                    from: "1Gi".into(),
                    to: "2Gi".into()
                },
                VolumeAction::Expand {
                    claim: "c-data-c-2".into(),
                    from: "1Gi".into(),
                    to: "2Gi".into()
                },
            ]
        );
        // Equal sizes in other units are no change; a larger claim is never shrunk.
        let claims = [claim(1, "1024Mi"), claim(2, "5Gi")];
        assert!(volume_actions(&claims, Some("1Gi"), 2, &[1, 2], false).is_empty());
    }

    #[test]
    fn departed_members_lose_their_claim_only_with_delete_and_only_without_a_pod() {
        let claims = [claim(1, "1Gi"), claim(4, "1Gi"), claim(5, "1Gi")];
        assert!(volume_actions(&claims, None, 3, &[1, 2, 3, 5], false).is_empty());
        assert_eq!(
            volume_actions(&claims, None, 3, &[1, 2, 3, 5], true),
            vec![VolumeAction::Delete {
                claim: "c-data-c-4".into()
            }]
        );
    }

    #[test]
    fn foreign_and_terminating_claims_are_left_alone() {
        let mut gone = claim(4, "1Gi");
        gone.terminating = true;
        let foreign = Claim {
            name: "other".into(),
            index: None,
            requested: Some("1Gi".into()),
            terminating: false,
        };
        assert!(volume_actions(&[gone, foreign], Some("9Gi"), 1, &[], true).is_empty());
    }
}
