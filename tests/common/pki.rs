//! Certificates for the TLS tests, made at run time with OpenSSL: a
//! self-signed CA and the leaves it signs (a server's for 127.0.0.1 and
//! localhost, or a client's). One copy for `tests/tcp_tls.rs` (EC keys,
//! subjects of several attributes) and `tests/kafka_support/secure.rs`
//! (RSA keys: the broker's JVM reads them as PEM). Included with
//! `#[path = "common/pki.rs"] mod pki;`.
#![allow(dead_code)]

use openssl::asn1::{Asn1Integer, Asn1Time};
use openssl::bn::{BigNum, MsbOption};
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::rsa::Rsa;
use openssl::x509::extension::{
    BasicConstraints, ExtendedKeyUsage, KeyUsage, SubjectAlternativeName,
};
use openssl::x509::{X509Builder, X509Name, X509NameBuilder, X509};

/// A P-256 key.
pub fn ec_key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A 2048-bit RSA key.
pub fn rsa_key() -> PKey<Private> {
    PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap()
}

/// A name of `entries` (`("CN", "x")`, ...), each its own RDN, in order.
pub fn name(entries: &[(&str, &str)]) -> X509Name {
    let mut name = X509NameBuilder::new().unwrap();
    for (field, value) in entries {
        name.append_entry_by_text(field, value).unwrap();
    }
    name.build()
}

fn serial() -> Asn1Integer {
    let mut number = BigNum::new().unwrap();
    number.rand(64, MsbOption::MAYBE_ZERO, false).unwrap();
    number.to_asn1_integer().unwrap()
}

/// A certificate of `subject` for `key`, valid from today for 30 days.
fn builder(subject: &[(&str, &str)], key: &PKey<Private>) -> X509Builder {
    let mut cert = X509::builder().unwrap();
    cert.set_version(2).unwrap();
    cert.set_serial_number(&serial()).unwrap();
    cert.set_subject_name(&name(subject)).unwrap();
    cert.set_pubkey(key).unwrap();
    cert.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    cert.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    cert
}

/// A self-signed CA of `subject`.
pub fn authority(subject: &[(&str, &str)], key: &PKey<Private>) -> X509 {
    let mut cert = builder(subject, key);
    cert.set_issuer_name(&name(subject)).unwrap();
    cert.append_extension(BasicConstraints::new().critical().ca().build().unwrap())
        .unwrap();
    let usage = KeyUsage::new()
        .critical()
        .key_cert_sign()
        .crl_sign()
        .build()
        .unwrap();
    cert.append_extension(usage).unwrap();
    cert.sign(key, MessageDigest::sha256()).unwrap();
    cert.build()
}

/// A certificate of `subject` for `key`, signed by `ca`: a server's (for
/// 127.0.0.1 and localhost) or a client's.
pub fn leaf(
    subject: &[(&str, &str)],
    key: &PKey<Private>,
    (ca, ca_key): (&X509, &PKey<Private>),
    server: bool,
) -> X509 {
    let mut cert = builder(subject, key);
    cert.set_issuer_name(ca.subject_name()).unwrap();
    cert.append_extension(BasicConstraints::new().build().unwrap())
        .unwrap();
    let usage = KeyUsage::new()
        .critical()
        .digital_signature()
        .key_encipherment()
        .build()
        .unwrap();
    cert.append_extension(usage).unwrap();
    let mut usage = ExtendedKeyUsage::new();
    if server {
        usage.server_auth();
        let names = SubjectAlternativeName::new()
            .ip("127.0.0.1")
            .dns("localhost")
            .build(&cert.x509v3_context(Some(ca), None))
            .unwrap();
        cert.append_extension(names).unwrap();
    } else {
        usage.client_auth();
    }
    cert.append_extension(usage.build().unwrap()).unwrap();
    cert.sign(ca_key, MessageDigest::sha256()).unwrap();
    cert.build()
}

/// A certificate as PEM.
pub fn pem(cert: &X509) -> Vec<u8> {
    cert.to_pem().unwrap()
}

/// A private key as unencrypted PKCS#8 PEM.
pub fn key_pem(key: &PKey<Private>) -> Vec<u8> {
    key.private_key_to_pem_pkcs8().unwrap()
}
