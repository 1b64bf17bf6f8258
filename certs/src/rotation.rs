//! Pure rotation decisions: when to renew a serving certificate, and how a CA is rotated with
//! an overlapping caBundle.
//!
//! # CA rotation
//!
//! The state ([`CaSet`]) is a *signer* (the CA that signs serving certificates), an optional
//! *next* CA (generated, published in the bundle, not signing yet) and the *bundle* (every CA the
//! caBundle trusts). [`plan_ca`] looks at the validity windows and the clock and returns one
//! [`CaStep`]; [`CaSet::reconcile`] applies steps until the state is steady.
//!
//! 1. The signer is past 2/3 of its life → [`CaStep::AddNext`]: a new CA is generated and
//!    appended to the bundle. Signing stays with the old CA, so nothing served changes yet.
//! 2. The next CA has been in the published bundle for [`RotationPolicy::promote_after`] (time for
//!    every replica to see it, for the injector to patch it into the webhook configurations and
//!    for the apiserver to reload them) → [`CaStep::PromoteNext`]: it becomes the signer and
//!    serving certificates are re-issued from it. The old CA stays in the bundle.
//! 3. A non-signing CA in the bundle has expired → [`CaStep::Prune`] removes it.
//!
//! Invariant: the signer (and a pending next CA) is always in the bundle, the signer only
//! changes to a CA that has been in the bundle for `promote_after`, and a CA leaves the bundle
//! only once expired, when every leaf it signed (leaves never outlive their CA) is expired too.
//! So, provided the published bundle lags the stored one by less than `promote_after`, every
//! served certificate chains to the published bundle. The only exception is a signer that has
//! already expired with no successor (operator down for longer than the CA's last third): it is
//! replaced at once ([`CaStep::ReplaceSigner`]); nothing valid could be served anyway.

use std::time::{Duration, SystemTime};

use crate::{error::Result, generate::Validity};

/// Renewal point of a certificate, as a fraction of its life: two thirds.
pub const RENEW_AT: (u32, u32) = (2, 3);

/// Lifetimes and delays that drive rotation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationPolicy {
    /// Lifetime of a generated CA.
    pub ca_lifetime: Duration,
    /// Lifetime of a serving certificate (capped at its CA's `notAfter`).
    pub serving_lifetime: Duration,
    /// How long a next CA must have been in the stored bundle before it signs. Must exceed the
    /// time for every replica to re-read the Secret plus the time to inject and propagate the
    /// caBundle.
    pub promote_after: Duration,
}

impl Default for RotationPolicy {
    fn default() -> Self {
        Self {
            ca_lifetime: crate::generate::DEFAULT_CA_LIFETIME,
            serving_lifetime: crate::generate::DEFAULT_SERVING_LIFETIME,
            promote_after: Duration::from_secs(15 * 60),
        }
    }
}

impl RotationPolicy {
    /// Checks that the values make sense together.
    pub fn validate(&self) -> Result<()> {
        let err = |m: &str| Err(crate::Error::Config(m.to_string()));
        if self.ca_lifetime < Duration::from_secs(3) {
            return err("CA lifetime must be at least 3s");
        }
        if self.serving_lifetime < Duration::from_secs(1) {
            return err("serving certificate lifetime must be at least 1s");
        }
        // The next CA is added at 2/3 of the signer's life; it must be promotable well before
        // the signer expires.
        if self.promote_after >= self.ca_lifetime / 3 {
            return err("promote_after must be shorter than a third of the CA lifetime");
        }
        Ok(())
    }
}

/// What [`plan_ca`] needs to know about the CA state (validity windows and bundle membership).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaView {
    /// The signing CA's validity; `None` if there is no usable signer.
    pub signer: Option<Validity>,
    /// Whether the signer's certificate is in the bundle.
    pub signer_in_bundle: bool,
    /// The pending CA's validity and when it was added to the bundle.
    pub next: Option<(Validity, SystemTime)>,
    /// Whether the pending CA's certificate is in the bundle.
    pub next_in_bundle: bool,
    /// Validity of every other bundle entry, in bundle order.
    pub others: Vec<Validity>,
}

/// One rotation step, chosen by [`plan_ca`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaStep {
    /// Nothing to do; look again at `recheck_at` at the latest.
    Steady {
        /// When the plan may next change.
        recheck_at: SystemTime,
    },
    /// No usable signer (first start, unreadable, or expired with no successor): generate a CA
    /// that signs at once, and add it to the bundle.
    ReplaceSigner,
    /// The signer or the pending CA is missing from the bundle: add it back.
    RepairBundle,
    /// Generate a pending CA (replacing an expired pending one) and append it to the bundle.
    AddNext,
    /// The pending CA becomes the signer; the old signer stays in the bundle until it expires.
    PromoteNext,
    /// Remove these entries of [`CaView::others`] (indices) from the bundle: they have expired.
    Prune(Vec<usize>),
}

/// Decides the next rotation step at `now`.
pub fn plan_ca(now: SystemTime, view: &CaView, policy: &RotationPolicy) -> CaStep {
    let next_usable = view.next.filter(|(v, _)| !v.expired_at(now));
    let Some(signer) = view.signer.filter(|v| !v.expired_at(now)) else {
        return if next_usable.is_some() {
            CaStep::PromoteNext
        } else {
            CaStep::ReplaceSigner
        };
    };
    if !view.signer_in_bundle || (view.next.is_some() && !view.next_in_bundle) {
        return CaStep::RepairBundle;
    }
    match view.next {
        Some((v, added_at)) => {
            if v.expired_at(now) {
                return CaStep::AddNext;
            }
            if now >= added_at + policy.promote_after {
                return CaStep::PromoteNext;
            }
        }
        None => {
            if now >= signer.point(RENEW_AT.0, RENEW_AT.1) {
                return CaStep::AddNext;
            }
        }
    }
    let expired: Vec<usize> = view
        .others
        .iter()
        .enumerate()
        .filter(|(_, v)| v.expired_at(now))
        .map(|(i, _)| i)
        .collect();
    if !expired.is_empty() {
        return CaStep::Prune(expired);
    }
    let mut recheck_at = signer.not_after;
    match view.next {
        Some((_, added_at)) => recheck_at = recheck_at.min(added_at + policy.promote_after),
        None => recheck_at = recheck_at.min(signer.point(RENEW_AT.0, RENEW_AT.1)),
    }
    for v in &view.others {
        recheck_at = recheck_at.min(v.not_after);
    }
    CaStep::Steady { recheck_at }
}

/// What [`plan_leaf`] needs to know about the serving certificate in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeafView {
    /// When it was issued (wall clock at issue, before backdating).
    pub issued_at: SystemTime,
    /// Its validity window.
    pub validity: Validity,
    /// Whether it was signed by the current signer.
    pub signed_by_signer: bool,
}

/// Decision about the serving certificate, from [`plan_leaf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafStep {
    /// Keep serving it; renew at `renew_at`.
    Keep {
        /// Two thirds of the way from issue to `notAfter`.
        renew_at: SystemTime,
    },
    /// Issue a new one now.
    Issue,
}

/// Decides whether the serving certificate must be (re)issued at `now`: none yet, signed by a
/// CA that no longer signs, not yet valid (clock went backwards) or past 2/3 of its life.
pub fn plan_leaf(now: SystemTime, leaf: Option<&LeafView>) -> LeafStep {
    let Some(leaf) = leaf else {
        return LeafStep::Issue;
    };
    if !leaf.signed_by_signer || now < leaf.validity.not_before {
        return LeafStep::Issue;
    }
    let life = leaf
        .validity
        .not_after
        .duration_since(leaf.issued_at)
        .unwrap_or(Duration::ZERO);
    let renew_at = leaf.issued_at + life * RENEW_AT.0 / RENEW_AT.1;
    if now >= renew_at {
        LeafStep::Issue
    } else {
        LeafStep::Keep { renew_at }
    }
}

/// A CA usable as signer: its validity and certificate DER (identity in the bundle).
pub trait SigningCa {
    /// Validity window of the CA certificate.
    fn validity(&self) -> Validity;
    /// DER of the CA certificate.
    fn der(&self) -> &[u8];
}

impl SigningCa for std::sync::Arc<crate::generate::CertificateAuthority> {
    fn validity(&self) -> Validity {
        crate::generate::CertificateAuthority::validity(self)
    }
    fn der(&self) -> &[u8] {
        self.cert_der().as_ref()
    }
}

/// One certificate of the bundle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleEntry {
    /// Certificate DER.
    pub der: Vec<u8>,
    /// Its validity.
    pub validity: Validity,
}

/// The CA state: signer, pending CA (with the time it was added) and bundle.
#[derive(Clone, Debug)]
pub struct CaSet<C> {
    /// The CA that signs serving certificates.
    pub signer: Option<C>,
    /// The pending CA and when it was added to the bundle.
    pub next: Option<(C, SystemTime)>,
    /// Every trusted CA, in publication order.
    pub bundle: Vec<BundleEntry>,
}

impl<C> Default for CaSet<C> {
    fn default() -> Self {
        Self {
            signer: None,
            next: None,
            bundle: Vec::new(),
        }
    }
}

impl<C: SigningCa + Clone> CaSet<C> {
    fn in_bundle(&self, der: &[u8]) -> bool {
        self.bundle.iter().any(|e| e.der == der)
    }

    fn push_bundle(&mut self, ca: &C) {
        if !self.in_bundle(ca.der()) {
            self.bundle.push(BundleEntry {
                der: ca.der().to_vec(),
                validity: ca.validity(),
            });
        }
    }

    /// The view [`plan_ca`] decides on.
    pub fn view(&self) -> CaView {
        let is_special = |der: &[u8]| {
            self.signer.as_ref().is_some_and(|s| s.der() == der)
                || self.next.as_ref().is_some_and(|(n, _)| n.der() == der)
        };
        CaView {
            signer: self.signer.as_ref().map(SigningCa::validity),
            signer_in_bundle: self
                .signer
                .as_ref()
                .is_some_and(|s| self.in_bundle(s.der())),
            next: self.next.as_ref().map(|(n, at)| (n.validity(), *at)),
            next_in_bundle: self
                .next
                .as_ref()
                .is_some_and(|(n, _)| self.in_bundle(n.der())),
            others: self
                .bundle
                .iter()
                .filter(|e| !is_special(&e.der))
                .map(|e| e.validity)
                .collect(),
        }
    }

    /// Applies one step. `generate(now)` makes a fresh CA when the step needs one.
    pub fn apply(
        &mut self,
        step: &CaStep,
        now: SystemTime,
        generate: &mut dyn FnMut(SystemTime) -> Result<C>,
    ) -> Result<()> {
        match step {
            CaStep::Steady { .. } => {}
            CaStep::ReplaceSigner => {
                let ca = generate(now)?;
                self.push_bundle(&ca);
                self.signer = Some(ca);
                self.next = None;
            }
            CaStep::RepairBundle => {
                if let Some(s) = self.signer.clone() {
                    self.push_bundle(&s);
                }
                if let Some((n, _)) = self.next.clone() {
                    self.push_bundle(&n);
                }
            }
            CaStep::AddNext => {
                if let Some((old, _)) = self.next.take() {
                    self.bundle.retain(|e| e.der != old.der());
                }
                let ca = generate(now)?;
                self.push_bundle(&ca);
                self.next = Some((ca, now));
            }
            CaStep::PromoteNext => {
                if let Some((n, _)) = self.next.take() {
                    self.push_bundle(&n);
                    self.signer = Some(n);
                }
            }
            CaStep::Prune(indices) => {
                let mut special: Vec<Vec<u8>> = Vec::new();
                if let Some(s) = &self.signer {
                    special.push(s.der().to_vec());
                }
                if let Some((n, _)) = &self.next {
                    special.push(n.der().to_vec());
                }
                // Indices count the non-special entries only, as in `CaView::others`.
                let mut k = 0usize;
                self.bundle.retain(|e| {
                    if special.contains(&e.der) {
                        return true;
                    }
                    let keep = !indices.contains(&k);
                    k += 1;
                    keep
                });
            }
        }
        Ok(())
    }

    /// Plans and applies steps until steady. Returns whether anything changed and when to look
    /// again.
    pub fn reconcile(
        &mut self,
        now: SystemTime,
        policy: &RotationPolicy,
        generate: &mut dyn FnMut(SystemTime) -> Result<C>,
    ) -> Result<(bool, SystemTime)> {
        let mut changed = false;
        // Each step strictly advances the state; a handful always suffices.
        for _ in 0..8 {
            match plan_ca(now, &self.view(), policy) {
                CaStep::Steady { recheck_at } => return Ok((changed, recheck_at)),
                step => {
                    tracing::debug!(?step, "CA rotation step");
                    self.apply(&step, now, generate)?;
                    changed = true;
                }
            }
        }
        Ok((changed, now))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(3600);

    fn t(hours: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000) + H * hours as u32
    }

    #[derive(Clone, Debug)]
    struct FakeCa {
        id: Vec<u8>,
        validity: Validity,
    }

    impl SigningCa for FakeCa {
        fn validity(&self) -> Validity {
            self.validity
        }
        fn der(&self) -> &[u8] {
            &self.id
        }
    }

    fn policy() -> RotationPolicy {
        // CA 300h, leaves 30h, promote 10h after publication.
        RotationPolicy {
            ca_lifetime: H * 300,
            serving_lifetime: H * 30,
            promote_after: H * 10,
        }
    }

    fn generator(policy: RotationPolicy) -> impl FnMut(SystemTime) -> Result<FakeCa> {
        let mut n = 0u8;
        move |now| {
            n += 1;
            Ok(FakeCa {
                id: vec![n],
                validity: Validity {
                    not_before: now,
                    not_after: now + policy.ca_lifetime,
                },
            })
        }
    }

    #[test]
    fn bootstrap_then_steady() {
        let p = policy();
        let mut set = CaSet::<FakeCa>::default();
        assert_eq!(plan_ca(t(0), &set.view(), &p), CaStep::ReplaceSigner);
        let mut g = generator(p);
        let (changed, recheck) = set.reconcile(t(0), &p, &mut g).unwrap();
        assert!(changed);
        assert_eq!(set.bundle.len(), 1);
        assert_eq!(recheck, t(200), "recheck at 2/3 of the CA life");
        assert_eq!(
            plan_ca(t(199), &set.view(), &p),
            CaStep::Steady { recheck_at: t(200) }
        );
    }

    #[test]
    fn rotation_sequence_overlaps() {
        let p = policy();
        let mut g = generator(p);
        let mut set = CaSet::<FakeCa>::default();
        set.reconcile(t(0), &p, &mut g).unwrap();
        let first = set.signer.clone().unwrap().id;

        // At 2/3: add the next CA, keep signing with the first.
        assert_eq!(plan_ca(t(200), &set.view(), &p), CaStep::AddNext);
        set.reconcile(t(200), &p, &mut g).unwrap();
        assert_eq!(set.signer.as_ref().unwrap().id, first);
        assert_eq!(set.bundle.len(), 2);
        let next = set.next.clone().unwrap().0.id;

        // Not promoted before promote_after.
        assert_eq!(
            plan_ca(t(209), &set.view(), &p),
            CaStep::Steady { recheck_at: t(210) }
        );
        // Promoted after it; old CA stays in the bundle.
        assert_eq!(plan_ca(t(210), &set.view(), &p), CaStep::PromoteNext);
        set.reconcile(t(210), &p, &mut g).unwrap();
        assert_eq!(set.signer.as_ref().unwrap().id, next);
        assert!(set.next.is_none());
        assert_eq!(set.bundle.len(), 2);
        // Old CA expires at 300: pruned then, not before.
        assert_eq!(
            plan_ca(t(299), &set.view(), &p),
            CaStep::Steady { recheck_at: t(300) }
        );
        assert_eq!(plan_ca(t(300), &set.view(), &p), CaStep::Prune(vec![0]));
        set.reconcile(t(300), &p, &mut g).unwrap();
        assert_eq!(set.bundle.len(), 1);
        assert_eq!(set.bundle[0].der, next);
    }

    #[test]
    fn expired_signer_with_pending_is_promoted_at_once() {
        let p = policy();
        let mut g = generator(p);
        let mut set = CaSet::<FakeCa>::default();
        set.reconcile(t(0), &p, &mut g).unwrap();
        set.reconcile(t(200), &p, &mut g).unwrap();
        // Operator down from 201 to 305: the signer expired, the next CA was added at 200.
        assert_eq!(plan_ca(t(305), &set.view(), &p), CaStep::PromoteNext);
    }

    #[test]
    fn expired_signer_without_pending_is_replaced() {
        let p = policy();
        let mut g = generator(p);
        let mut set = CaSet::<FakeCa>::default();
        set.reconcile(t(0), &p, &mut g).unwrap();
        assert_eq!(plan_ca(t(301), &set.view(), &p), CaStep::ReplaceSigner);
        set.reconcile(t(301), &p, &mut g).unwrap();
        // Replaced, then the expired one pruned.
        assert_eq!(set.bundle.len(), 1);
        assert_eq!(set.signer.as_ref().unwrap().id, vec![2]);
    }

    #[test]
    fn bundle_missing_signer_is_repaired() {
        let p = policy();
        let mut g = generator(p);
        let mut set = CaSet::<FakeCa>::default();
        set.reconcile(t(0), &p, &mut g).unwrap();
        set.bundle.clear();
        assert_eq!(plan_ca(t(1), &set.view(), &p), CaStep::RepairBundle);
        set.reconcile(t(1), &p, &mut g).unwrap();
        assert_eq!(set.bundle.len(), 1);
    }

    #[test]
    fn policy_validation() {
        assert!(RotationPolicy::default().validate().is_ok());
        let bad = RotationPolicy {
            promote_after: H * 200,
            ..policy()
        };
        assert!(bad.validate().is_err());
    }

    /// Simulates years in 1-hour steps with leaf renewal, and checks the invariant: the served
    /// leaf is valid and its issuer is in a bundle that was stored at least `promote_after` ago,
    /// unless it is the very first CA.
    #[test]
    fn simulated_invariant_served_leaf_chains_to_published_bundle() {
        let p = policy();
        let mut g = generator(p);
        let mut set = CaSet::<FakeCa>::default();
        // History of stored bundles: (time stored, ids).
        let mut history: Vec<(SystemTime, Vec<Vec<u8>>)> = Vec::new();
        // Leaf: (issuer id, issued_at, validity).
        let mut leaf: Option<(Vec<u8>, LeafView)> = None;
        let mut rotations = 0;
        for h in 0..3000u64 {
            let now = t(h);
            let before: Vec<Vec<u8>> = set.bundle.iter().map(|e| e.der.clone()).collect();
            let signer_before = set.signer.as_ref().map(|s| s.id.clone());
            set.reconcile(now, &p, &mut g).unwrap();
            let after: Vec<Vec<u8>> = set.bundle.iter().map(|e| e.der.clone()).collect();
            if before != after {
                history.push((now, after.clone()));
            }
            let signer = set.signer.clone().unwrap();
            if signer_before.is_some() && signer_before != Some(signer.id.clone()) {
                rotations += 1;
            }
            let view = leaf.as_ref().map(|(id, v)| LeafView {
                signed_by_signer: *id == signer.id,
                ..*v
            });
            if plan_leaf(now, view.as_ref()) == LeafStep::Issue {
                let not_after = (now + p.serving_lifetime).min(signer.validity.not_after);
                leaf = Some((
                    signer.id.clone(),
                    LeafView {
                        issued_at: now,
                        validity: Validity {
                            not_before: now,
                            not_after,
                        },
                        signed_by_signer: true,
                    },
                ));
            }
            let (issuer, lv) = leaf.clone().unwrap();
            assert!(lv.validity.contains(now), "leaf valid at hour {h}");
            // The bundle published promote_after ago (or the first one) contains the issuer.
            let published = history
                .iter()
                .rev()
                .find(|(at, _)| *at + p.promote_after <= now)
                .or(history.first())
                .unwrap();
            assert!(
                published.1.contains(&issuer) && after.contains(&issuer),
                "hour {h}: issuer {issuer:?} not in published bundle {:?}",
                published.1
            );
        }
        assert!(rotations >= 10, "rotated {rotations} times");
    }

    #[test]
    fn leaf_plan() {
        let issued = t(0);
        let v = LeafView {
            issued_at: issued,
            validity: Validity {
                not_before: issued,
                not_after: t(30),
            },
            signed_by_signer: true,
        };
        assert_eq!(plan_leaf(t(1), None), LeafStep::Issue);
        assert_eq!(
            plan_leaf(t(19), Some(&v)),
            LeafStep::Keep { renew_at: t(20) }
        );
        assert_eq!(plan_leaf(t(20), Some(&v)), LeafStep::Issue);
        let other = LeafView {
            signed_by_signer: false,
            ..v
        };
        assert_eq!(plan_leaf(t(1), Some(&other)), LeafStep::Issue);
        // Clock went backwards past notBefore.
        assert_eq!(
            plan_leaf(issued - Duration::from_secs(1), Some(&v)),
            LeafStep::Issue
        );
    }
}
