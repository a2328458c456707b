//! A client certificate's subject as text for `--origin`: its attributes
//! in the certificate's order, `TYPE=value` joined by commas
//! (`O=Acme,CN=sensor-7`), those of one multi-valued RDN by `+`; a type
//! without a short name as its dotted OID. Values are escaped as RFC 4514
//! says, so that a value holding `,CN=...` cannot pass for another
//! attribute.
//! The certificate was verified before it is read here; still, a subject
//! that cannot be read gives no text rather than a panic.

use tokio_rustls::rustls::pki_types::CertificateDer;

/// DER tags met in a name.
const SET: u8 = 0x31;
const SEQUENCE: u8 = 0x30;
const OID: u8 = 0x06;
const BMP_STRING: u8 = 0x1e;

/// The short names of the usual attribute types, by their OID's DER bytes.
const SHORT_NAMES: [(&[u8], &str); 9] = [
    (&[0x55, 0x04, 0x03], "CN"),
    (&[0x55, 0x04, 0x06], "C"),
    (&[0x55, 0x04, 0x07], "L"),
    (&[0x55, 0x04, 0x08], "ST"),
    (&[0x55, 0x04, 0x0a], "O"),
    (&[0x55, 0x04, 0x0b], "OU"),
    (&[0x55, 0x04, 0x05], "serialNumber"),
    (
        &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19],
        "DC",
    ),
    (
        &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01],
        "emailAddress",
    ),
];

/// The subject of `cert` (`None`: unreadable or empty).
pub(super) fn of(cert: &CertificateDer<'_>) -> Option<Box<str>> {
    let cert = webpki::EndEntityCert::try_from(cert).ok()?;
    let text = name(cert.subject())?;
    (!text.is_empty()).then(|| text.into_boxed_str())
}

/// A DER `Name`'s contents (its RDNs, without the outer SEQUENCE) as text.
fn name(mut der: &[u8]) -> Option<String> {
    let mut text = String::new();
    while !der.is_empty() {
        let (tag, mut rdn, rest) = element(der)?;
        der = rest;
        if tag != SET {
            return None;
        }
        let mut first_of_rdn = true;
        while !rdn.is_empty() {
            let (tag, attribute, rest) = element(rdn)?;
            rdn = rest;
            if tag != SEQUENCE {
                return None;
            }
            let (tag, oid, value) = element(attribute)?;
            if tag != OID {
                return None;
            }
            let (tag, value, _) = element(value)?;
            if !text.is_empty() {
                text.push(if first_of_rdn { ',' } else { '+' });
            }
            first_of_rdn = false;
            match SHORT_NAMES.iter().find(|(known, _)| *known == oid) {
                Some((_, short)) => text.push_str(short),
                None => text.push_str(&dotted(oid)?),
            }
            text.push('=');
            escape_into(&string(tag, value), &mut text);
        }
    }
    Some(text)
}

/// One DER element of `der`: its tag, its contents, and what follows it.
fn element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let octets = usize::from(first & 0x7f);
        if octets == 0 || octets > 4 || rest.len() < octets {
            return None;
        }
        let (bytes, after) = rest.split_at(octets);
        rest = after;
        bytes
            .iter()
            .fold(0usize, |len, &byte| (len << 8) | usize::from(byte))
    };
    if rest.len() < len {
        return None;
    }
    let (contents, after) = rest.split_at(len);
    Some((tag, contents, after))
}

/// An OID's DER contents in dotted form (`2.5.4.3`).
fn dotted(der: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut arc = 0u64;
    for &byte in der {
        arc = arc.checked_mul(128)? | u64::from(byte & 0x7f);
        if byte & 0x80 == 0 {
            arcs.push(arc);
            arc = 0;
        }
    }
    let (&first, rest) = arcs.split_first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut text = format!("{a}.{b}");
    for arc in rest {
        text.push('.');
        text.push_str(&arc.to_string());
    }
    Some(text)
}

/// `value` escaped as RFC 4514 (section 2.4) asks: `"`, `+`, `,`, `;`,
/// `<`, `>` and `\` anywhere, a leading `#` or space, a trailing space.
fn escape_into(value: &str, text: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ');
        if special {
            text.push('\\');
        }
        text.push(c);
    }
}

/// An attribute's value: UTF-16 for a BMPString, else its bytes as UTF-8
/// (PrintableString, IA5String and UTF8String are; anything else is
/// replaced where it is not).
fn string(tag: u8, value: &[u8]) -> String {
    if tag == BMP_STRING {
        let units = value
            .chunks_exact(2)
            .map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
        return char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect();
    }
    String::from_utf8_lossy(value).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RDN set of one attribute: `oid` = a UTF8String.
    fn rdn(oid: &[u8], value: &str) -> Vec<u8> {
        let mut attribute = vec![OID, oid.len() as u8];
        attribute.extend_from_slice(oid);
        attribute.extend_from_slice(&[0x0c, value.len() as u8]);
        attribute.extend_from_slice(value.as_bytes());
        let mut sequence = vec![SEQUENCE, attribute.len() as u8];
        sequence.extend(attribute);
        let mut set = vec![SET, sequence.len() as u8];
        set.extend(sequence);
        set
    }

    #[test]
    fn attributes_read_in_order_with_short_names() {
        let mut der = rdn(&[0x55, 0x04, 0x0a], "Acme");
        der.extend(rdn(&[0x55, 0x04, 0x03], "sensor-7"));
        der.extend(rdn(&[0x2a, 0x03, 0x81, 0x00], "x"));
        assert_eq!(
            name(&der).as_deref(),
            Some("O=Acme,CN=sensor-7,1.2.3.128=x")
        );
    }

    #[test]
    fn a_value_cannot_pass_for_another_attribute() {
        let forged = rdn(&[0x55, 0x04, 0x0a], "Acme,CN=sensor-7");
        assert_eq!(name(&forged).as_deref(), Some("O=Acme\\,CN=sensor-7"));
        let odd = rdn(&[0x55, 0x04, 0x03], "#a+b;\"<c> ");
        assert_eq!(name(&odd).as_deref(), Some("CN=\\#a\\+b\\;\\\"\\<c\\>\\ "));
    }

    #[test]
    fn a_broken_name_gives_nothing() {
        let der = rdn(&[0x55, 0x04, 0x03], "cut short");
        assert_eq!(name(&der[..der.len() - 1]), None);
        assert_eq!(name(&[SEQUENCE, 0]), None);
        assert_eq!(element(&[0x04, 0x85, 1, 1, 1, 1, 1]), None);
        assert_eq!(string(BMP_STRING, &[0, b'h', 0, b'i']), "hi");
    }
}
