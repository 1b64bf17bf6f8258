//! Certificate generation and inspection with rcgen (ECDSA P-256).
//!
//! A [`CertificateAuthority`] is long-lived (default [`DEFAULT_CA_LIFETIME`]) and signs short-lived
//! [`ServingCert`]s (default [`DEFAULT_SERVING_LIFETIME`]). Everything goes in and out as PEM.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls::{
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    sign::CertifiedKey,
};
use time::OffsetDateTime;

use crate::{
    error::{Error, Result},
    tls::ring_provider,
};

/// Default lifetime of a generated CA: five years.
pub const DEFAULT_CA_LIFETIME: Duration = Duration::from_secs(5 * 365 * 24 * 3600);

/// Default lifetime of a generated serving certificate: thirty days.
pub const DEFAULT_SERVING_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

/// Upper bound on how far `notBefore` is set into the past to tolerate clock skew between the
/// operator and the apiserver. The backdate is `min(MAX_BACKDATE, lifetime / 10)` so that
/// certificates with a lifetime of seconds (tests) stay meaningful.
pub const MAX_BACKDATE: Duration = Duration::from_secs(5 * 60);

/// The validity window of a certificate, at one-second resolution (as encoded in X.509).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Validity {
    /// `notBefore`.
    pub not_before: SystemTime,
    /// `notAfter`.
    pub not_after: SystemTime,
}

impl Validity {
    /// `notAfter - notBefore` (zero if inverted).
    pub fn lifetime(&self) -> Duration {
        self.not_after
            .duration_since(self.not_before)
            .unwrap_or(Duration::ZERO)
    }

    /// Whether `t` lies inside the window (`notBefore <= t < notAfter`).
    pub fn contains(&self, t: SystemTime) -> bool {
        self.not_before <= t && t < self.not_after
    }

    /// Whether the certificate has expired at `t`.
    pub fn expired_at(&self, t: SystemTime) -> bool {
        t >= self.not_after
    }

    /// The instant `num/den` of the way through the window, e.g. `(2, 3)` for two thirds.
    pub fn point(&self, num: u32, den: u32) -> SystemTime {
        let den = den.max(1);
        self.not_before + self.lifetime() * num / den
    }
}

/// What [`inspect_cert_pem`] reads from a certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertInfo {
    /// The validity window.
    pub validity: Validity,
    /// The serial number as lowercase hex with `:` separators (x509-parser's form).
    pub serial_hex: String,
    /// The subject distinguished name in RFC 4514 form.
    pub subject: String,
    /// Whether the certificate has `basicConstraints: CA:TRUE`.
    pub is_ca: bool,
}

/// Reads the first certificate of a PEM document (`&str`, `&[u8]`, `Vec<u8>`...).
pub fn inspect_cert_pem(pem: impl AsRef<[u8]>) -> Result<CertInfo> {
    let der =
        CertificateDer::from_pem_slice(pem.as_ref()).map_err(|e| Error::pem("certificate", e))?;
    inspect_cert_der(&der)
}

/// Reads a DER certificate.
pub fn inspect_cert_der(der: &[u8]) -> Result<CertInfo> {
    let (_, cert) =
        x509_parser::parse_x509_certificate(der).map_err(|e| Error::X509(e.to_string()))?;
    let validity = cert.validity();
    Ok(CertInfo {
        validity: Validity {
            not_before: from_unix(validity.not_before.timestamp()),
            not_after: from_unix(validity.not_after.timestamp()),
        },
        serial_hex: cert.raw_serial_as_string(),
        subject: cert.subject().to_string(),
        is_ca: cert.is_ca(),
    })
}

/// Parses every `CERTIFICATE` block of a PEM document (a CA bundle). Fails on an empty bundle.
pub fn certs_from_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::pem("certificate bundle", e))?;
    if certs.is_empty() {
        return Err(Error::pem("certificate bundle", "no CERTIFICATE block"));
    }
    Ok(certs)
}

/// Encodes a DER certificate as PEM.
pub fn cert_der_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + 64);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // The base64 alphabet is ASCII, so each chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The usual SANs for an in-cluster webhook Service: `<service>.<ns>.svc`,
/// `<service>.<ns>.svc.cluster.local`, `<service>.<ns>`, `<service>`.
pub fn service_sans(service: &str, namespace: &str) -> Vec<String> {
    vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_string(),
    ]
}

/// A certificate authority: its certificate and key as PEM, and an rcgen issuer that signs
/// serving certificates.
pub struct CertificateAuthority {
    cert_pem: String,
    key_pem: String,
    cert_der: CertificateDer<'static>,
    info: CertInfo,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for CertificateAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateAuthority")
            .field("subject", &self.info.subject)
            .field("serial", &self.info.serial_hex)
            .field("validity", &self.info.validity)
            .finish_non_exhaustive()
    }
}

impl CertificateAuthority {
    /// Generates a self-signed CA valid from now for `lifetime`.
    pub fn generate(common_name: &str, lifetime: Duration) -> Result<Self> {
        Self::generate_at(common_name, SystemTime::now(), lifetime)
    }

    /// Generates a self-signed CA whose life starts at `now` (backdated by up to
    /// [`MAX_BACKDATE`]) and ends at `now + lifetime`.
    pub fn generate_at(common_name: &str, now: SystemTime, lifetime: Duration) -> Result<Self> {
        if lifetime < Duration::from_secs(1) {
            return Err(Error::Config("CA lifetime must be at least 1s".into()));
        }
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "nats-operator");
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        // Path length 0: this CA may sign leaves only.
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let (not_before, not_after) = window(now, lifetime)?;
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.self_signed(&key)?;
        let cert_der = cert.der().clone();
        let info = inspect_cert_der(&cert_der)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der,
            info,
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads an existing CA from its certificate and private key (PKCS#8 PEM). Fails if the
    /// certificate is not a CA or the key does not belong to it.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes())
            .map_err(|e| Error::pem("CA certificate", e))?;
        let info = inspect_cert_der(&cert_der)?;
        if !info.is_ca {
            return Err(Error::X509(format!(
                "certificate {} is not a CA",
                info.subject
            )));
        }
        let key = KeyPair::from_pem(key_pem)?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&cert_der)
            .map_err(|e| Error::X509(e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(Error::X509(
                "CA private key does not match the CA certificate".into(),
            ));
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)?;
        Ok(Self {
            cert_pem: cert_der_to_pem(&cert_der),
            key_pem: issuer.key().serialize_pem(),
            cert_der,
            info,
            issuer,
        })
    }

    /// The CA certificate as PEM (what goes into a caBundle).
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The CA certificate as DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Subject, serial and validity of the CA certificate.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The CA's validity window.
    pub fn validity(&self) -> Validity {
        self.info.validity
    }

    /// Issues a serving certificate valid from now for `lifetime` (capped at the CA's `notAfter`).
    pub fn issue_serving(&self, sans: &[String], lifetime: Duration) -> Result<ServingCert> {
        self.issue_serving_at(sans, SystemTime::now(), lifetime)
    }

    /// Issues a serving certificate for `sans` (DNS names or IP literals), valid from `now`
    /// (backdated by up to [`MAX_BACKDATE`]) for `lifetime`, never past the CA's `notAfter`.
    pub fn issue_serving_at(
        &self,
        sans: &[String],
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<ServingCert> {
        self.issue_at(
            sans,
            now,
            lifetime,
            vec![ExtendedKeyUsagePurpose::ServerAuth],
        )
    }

    /// Issues a certificate for both ends of mutual TLS (server and client auth), as NATS
    /// routes, gateways and leafnodes use one certificate to accept and to dial.
    pub fn issue_peer(&self, sans: &[String], lifetime: Duration) -> Result<ServingCert> {
        self.issue_at(
            sans,
            SystemTime::now(),
            lifetime,
            vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        )
    }

    fn issue_at(
        &self,
        sans: &[String],
        now: SystemTime,
        lifetime: Duration,
        usages: Vec<ExtendedKeyUsagePurpose>,
    ) -> Result<ServingCert> {
        if sans.is_empty() {
            return Err(Error::Config(
                "a serving certificate needs at least one SAN".into(),
            ));
        }
        if lifetime < Duration::from_secs(1) {
            return Err(Error::Config(
                "serving certificate lifetime must be at least 1s".into(),
            ));
        }
        let mut params = CertificateParams::new(sans.to_vec())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "nats-operator");
        dn.push(DnType::CommonName, sans[0].as_str());
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages;
        params.use_authority_key_identifier_extension = true;
        let (not_before, mut not_after) = window(now, lifetime)?;
        let ca_not_after = to_offset(self.info.validity.not_after)?;
        if not_after > ca_not_after {
            not_after = ca_not_after;
        }
        if not_after <= not_before {
            return Err(Error::Config(format!(
                "CA {} expires before the serving certificate could start",
                self.info.subject
            )));
        }
        params.not_before = not_before;
        params.not_after = not_after;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let info = inspect_cert_der(cert.der())?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            info,
            issued_at: now,
            issuer_der: self.cert_der.clone(),
        })
    }
}

/// A serving (leaf) certificate and its private key.
#[derive(Clone)]
pub struct ServingCert {
    cert_pem: String,
    key_pem: String,
    info: CertInfo,
    issued_at: SystemTime,
    issuer_der: CertificateDer<'static>,
}

impl fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServingCert")
            .field("subject", &self.info.subject)
            .field("serial", &self.info.serial_hex)
            .field("validity", &self.info.validity)
            .finish_non_exhaustive()
    }
}

impl ServingCert {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Subject, serial and validity.
    pub fn info(&self) -> &CertInfo {
        &self.info
    }

    /// The validity window.
    pub fn validity(&self) -> Validity {
        self.info.validity
    }

    /// The wall-clock time it was issued (the `now` passed at issue, before backdating).
    pub fn issued_at(&self) -> SystemTime {
        self.issued_at
    }

    /// The DER of the CA certificate that signed it.
    pub fn issuer_der(&self) -> &CertificateDer<'static> {
        &self.issuer_der
    }

    /// Builds the rustls [`CertifiedKey`] to serve (chain = this leaf only), using the ring
    /// provider.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>> {
        certified_key_from_pem(self.cert_pem.as_bytes(), self.key_pem.as_bytes())
    }
}

/// Builds a rustls [`CertifiedKey`] from a PEM certificate chain and a PEM private key (PKCS#8,
/// PKCS#1 or SEC1), using the ring provider, and checks that the key matches the leaf.
pub fn certified_key_from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<CertifiedKey>> {
    let chain = certs_from_pem(cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| Error::pem("private key", e))?;
    let ck = CertifiedKey::from_der(chain, key, &ring_provider())?;
    ck.keys_match()?;
    Ok(Arc::new(ck))
}

fn from_unix(secs: i64) -> SystemTime {
    if secs >= 0 {
        UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
    }
}

/// Whole seconds since the epoch, as X.509 encodes them.
fn to_offset(t: SystemTime) -> Result<OffsetDateTime> {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map_err(|_| Error::Config("time before 1970".into()))?
        .as_secs();
    let secs = i64::try_from(secs).map_err(|_| Error::Config("time out of range".into()))?;
    OffsetDateTime::from_unix_timestamp(secs).map_err(|e| Error::Config(e.to_string()))
}

/// `(notBefore, notAfter)` for a certificate issued at `now` for `lifetime`.
fn window(now: SystemTime, lifetime: Duration) -> Result<(OffsetDateTime, OffsetDateTime)> {
    let backdate = MAX_BACKDATE.min(lifetime / 10);
    let not_before = to_offset(now.checked_sub(backdate).unwrap_or(now))?;
    let not_after = to_offset(
        now.checked_add(lifetime)
            .ok_or_else(|| Error::Config("lifetime out of range".into()))?,
    )?;
    Ok((not_before, not_after))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ca_round_trips_through_pem_and_signs() {
        let ca = CertificateAuthority::generate("rt", Duration::from_secs(3600)).unwrap();
        assert!(ca.info().is_ca);
        assert!(ca.info().subject.contains("CN=rt"));
        let back = CertificateAuthority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        assert_eq!(back.cert_der(), ca.cert_der());
        assert_eq!(back.validity(), ca.validity());
        let leaf = back
            .issue_serving(&["localhost".into()], Duration::from_secs(60))
            .unwrap();
        // The leaf names the reloaded CA as issuer.
        let der = CertificateDer::from_pem_slice(leaf.cert_pem().as_bytes()).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        assert_eq!(parsed.issuer().to_string(), ca.info().subject);
        assert!(!leaf.info().is_ca);
        assert!(leaf.certified_key().is_ok());
    }

    #[test]
    fn from_pem_rejects_wrong_key_and_non_ca() {
        let a = CertificateAuthority::generate("a", Duration::from_secs(60)).unwrap();
        let b = CertificateAuthority::generate("b", Duration::from_secs(60)).unwrap();
        assert!(CertificateAuthority::from_pem(a.cert_pem(), b.key_pem()).is_err());
        let leaf = a
            .issue_serving(&["x.example".into()], Duration::from_secs(60))
            .unwrap();
        assert!(CertificateAuthority::from_pem(leaf.cert_pem(), leaf.key_pem()).is_err());
        assert!(CertificateAuthority::from_pem("nope", a.key_pem()).is_err());
    }

    #[test]
    fn validity_and_capping() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ca = CertificateAuthority::generate_at("c", now, Duration::from_secs(1000)).unwrap();
        let v = ca.validity();
        assert_eq!(v.not_after, now + Duration::from_secs(1000));
        assert_eq!(
            v.not_before,
            now - Duration::from_secs(100),
            "backdated by lifetime/10"
        );
        // A leaf asked to outlive the CA is capped at the CA's notAfter.
        let leaf = ca
            .issue_serving_at(
                &["a".into()],
                now + Duration::from_secs(900),
                Duration::from_secs(500),
            )
            .unwrap();
        assert_eq!(leaf.validity().not_after, v.not_after);
        // Long lifetimes backdate by at most MAX_BACKDATE.
        let ca2 = CertificateAuthority::generate_at("d", now, DEFAULT_CA_LIFETIME).unwrap();
        assert_eq!(ca2.validity().not_before, now - MAX_BACKDATE);
        // Leaf starting after the CA expired is refused.
        assert!(
            ca.issue_serving_at(
                &["a".into()],
                now + Duration::from_secs(2000),
                Duration::from_secs(10)
            )
            .is_err()
        );
        assert!(
            ca.issue_serving_at(&[], now, Duration::from_secs(10))
                .is_err()
        );
    }

    #[test]
    fn bundle_parsing() {
        let a = CertificateAuthority::generate("a", Duration::from_secs(60)).unwrap();
        let b = CertificateAuthority::generate("b", Duration::from_secs(60)).unwrap();
        let pem = format!("{}{}", a.cert_pem(), b.cert_pem());
        assert_eq!(certs_from_pem(pem.as_bytes()).unwrap().len(), 2);
        assert!(certs_from_pem(b"").is_err());
        assert_eq!(cert_der_to_pem(a.cert_der()), a.cert_pem());
    }

    #[test]
    fn mismatched_pair_is_rejected() {
        let ca = CertificateAuthority::generate("a", Duration::from_secs(60)).unwrap();
        let l1 = ca
            .issue_serving(&["a".into()], Duration::from_secs(60))
            .unwrap();
        let l2 = ca
            .issue_serving(&["a".into()], Duration::from_secs(60))
            .unwrap();
        assert!(certified_key_from_pem(l1.cert_pem().as_bytes(), l2.key_pem().as_bytes()).is_err());
    }
}
