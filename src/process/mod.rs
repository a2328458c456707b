//! The processing flags, applied to every record in the decode stage,
//! whatever its source: `--filter`, then `--rename`, then `--select`
//! (the filter reads the input's names, `--select` the renamed ones), with
//! `--infer-types` first of all. Without any of them the decode stage runs
//! its plain loop ([`crate::codec::NoStep`]): no cost per record.
//!
//! A record is read as its top-level fields (keys with their values' JSON
//! text, [`object`]), and written again only when a flag changes it.

mod filter;
mod infer;
mod object;
mod value;

use std::borrow::Cow;
use std::sync::Arc;

pub use self::filter::{ExprError, Filter};
use self::object::Field;
use self::value::{unquote, Value};
use crate::codec::{self, RecordStep, Step};
use crate::record::Content;

/// What the processing flags ask for, checked.
#[derive(Debug, Default)]
pub struct Processing {
    /// `--filter`: only records it holds for go on.
    pub filter: Option<Filter>,
    /// `--rename OLD=NEW`, each old name once, each new name once.
    pub renames: Vec<(String, String)>,
    /// `--select`: the names kept (after renaming), in this order.
    pub select: Option<Vec<String>>,
    /// `--infer-types`: CSV and line values become numbers, booleans, null.
    pub infer_types: bool,
}

impl Processing {
    /// The flags as given, checked: renames as `OLD=NEW` (none twice),
    /// no name selected twice, nor one that `--rename` renames away.
    pub fn new(
        filter: Option<&str>,
        renames: &[String],
        select: Option<&[String]>,
        infer_types: bool,
    ) -> Result<Processing, String> {
        let filter = filter
            .map(Filter::parse)
            .transpose()
            .map_err(|error| error.to_string())?;
        let mut pairs: Vec<(String, String)> = Vec::new();
        for rename in renames {
            let Some((old, new)) = rename
                .split_once('=')
                .filter(|(old, new)| !old.is_empty() && !new.is_empty() && !new.contains('='))
            else {
                return Err(format!("--rename {rename}: expected OLD=NEW"));
            };
            if pairs.iter().any(|(seen, _)| seen == old) {
                return Err(format!("--rename: `{old}` is renamed twice"));
            }
            if let Some((other, _)) = pairs.iter().find(|(_, seen)| seen == new) {
                return Err(format!(
                    "--rename: `{other}` and `{old}` are both renamed to `{new}`"
                ));
            }
            pairs.push((old.to_string(), new.to_string()));
        }
        if let Some(select) = select {
            for (index, name) in select.iter().enumerate() {
                if name.is_empty() {
                    return Err("--select: an empty field name (two commas in a row?)".into());
                }
                if select[..index].contains(name) {
                    return Err(format!("--select: `{name}` is named twice"));
                }
                let renamed_away = pairs.iter().find(|(old, _)| old == name);
                let made = pairs.iter().any(|(_, new)| new == name);
                if let (Some((_, new)), false) = (renamed_away, made) {
                    return Err(format!(
                        "--select {name}: --rename renames `{name}` to `{new}`, and --select \
                         names the fields after renaming: select `{new}`"
                    ));
                }
            }
        }
        Ok(Processing {
            filter,
            renames: pairs,
            select: select.map(<[String]>::to_vec),
            infer_types,
        })
    }

    /// True when some flag asks for processing.
    pub fn is_active(&self) -> bool {
        self.filter.is_some()
            || !self.renames.is_empty()
            || self.select.is_some()
            || self.infer_types
    }
}

/// The decode stage's [`RecordStep`] for a run's [`Processing`].
#[derive(Debug)]
pub struct Processor {
    processing: Arc<Processing>,
    /// The record rewritten, before it replaces the decoded one.
    scratch: Vec<u8>,
}

impl Processor {
    /// A processor of `processing`.
    pub fn new(processing: Arc<Processing>) -> Processor {
        Processor {
            processing,
            scratch: Vec::new(),
        }
    }
}

impl RecordStep for Processor {
    fn apply(&mut self, content: &Content, buf: &mut Vec<u8>, start: usize) -> Step {
        self.scratch.clear();
        match process(&self.processing, content, &buf[start..], &mut self.scratch) {
            Processed::Dropped => Step::Drop,
            Processed::Same => Step::Keep(None),
            Processed::Rewritten(origin_key) => {
                buf.truncate(start);
                buf.extend_from_slice(&self.scratch);
                Step::Keep(origin_key)
            }
        }
    }
}

/// What [`process`] did with a record.
enum Processed {
    /// `--filter` dropped it.
    Dropped,
    /// It goes on as it was.
    Same,
    /// It goes on as rewritten; `Some(key)`: its keys changed, and its
    /// `--origin` object goes under `key`.
    Rewritten(Option<Cow<'static, str>>),
}

/// Applies `processing` to `record` (a JSON object of a batch holding
/// `content`), writing it into `out` when it changes.
fn process(
    processing: &Processing,
    content: &Content,
    record: &[u8],
    out: &mut Vec<u8>,
) -> Processed {
    let Some(mut fields) = object::fields(record) else {
        // The decode stage wrote (or checked) one JSON object: not reached.
        return Processed::Same;
    };
    let infer = processing.infer_types
        && matches!(
            content,
            Content::Csv(_) | Content::CsvNumbered | Content::Lines
        );
    let mut typed = false;
    if infer {
        for field in &mut fields {
            // Values are borrowed from the record, so is what they become.
            let Cow::Borrowed(json) = field.value else {
                continue;
            };
            if let Some(typed_json) = inferred(json) {
                field.value = typed_json;
                typed = true;
            }
        }
    }
    if let Some(filter) = &processing.filter {
        let lookup = |name: &str| {
            fields
                .iter()
                .find(|field| field.key == name)
                .map(|field| Value::of_json(&field.value))
        };
        if !filter.matches(&lookup) {
            return Processed::Dropped;
        }
    }
    let reshaped = !processing.renames.is_empty() || processing.select.is_some();
    if !reshaped && !typed {
        return Processed::Same;
    }
    let named = renamed(&fields, &processing.renames);
    let kept: Vec<(&str, &Field<'_>)> = match &processing.select {
        Some(select) => select
            .iter()
            .filter_map(|name| named.iter().find(|(key, _)| key == name).copied())
            .collect(),
        None => named,
    };
    object::write(out, kept.iter().copied());
    if !reshaped {
        return Processed::Rewritten(None);
    }
    let origin_like: Vec<&str> = kept
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| key.starts_with("_origin"))
        .collect();
    Processed::Rewritten(Some(codec::free_origin_key(&origin_like)))
}

/// The JSON text a string value becomes under `--infer-types`, if another.
fn inferred(json: &str) -> Option<Cow<'_, str>> {
    if !json.starts_with('"') {
        return None;
    }
    match unquote(json) {
        Cow::Borrowed(text) => infer::infer(text),
        Cow::Owned(text) => infer::infer(&text).map(|typed| Cow::Owned(typed.into_owned())),
    }
}

/// Each field under its name after `renames`; a field renamed onto the
/// name of one that is not renamed replaces it (where the renamed one was).
fn renamed<'f, 'a>(
    fields: &'f [Field<'a>],
    renames: &'f [(String, String)],
) -> Vec<(&'f str, &'f Field<'a>)> {
    if renames.is_empty() {
        return fields
            .iter()
            .map(|field| (field.key.as_ref(), field))
            .collect();
    }
    let new_name = |field: &'f Field<'a>| -> Option<&'f str> {
        renames
            .iter()
            .find(|(old, _)| *old == field.key)
            .map(|(_, new)| new.as_str())
    };
    let made: Vec<&str> = fields.iter().filter_map(new_name).collect();
    fields
        .iter()
        .filter_map(|field| match new_name(field) {
            Some(new) => Some((new, field)),
            None if made.contains(&field.key.as_ref()) => None,
            None => Some((field.key.as_ref(), field)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::CsvHeader;

    fn processing(
        filter: Option<&str>,
        renames: &[&str],
        select: Option<&[&str]>,
        infer: bool,
    ) -> Result<Processing, String> {
        let renames: Vec<String> = renames.iter().map(|s| s.to_string()).collect();
        let select: Option<Vec<String>> =
            select.map(|names| names.iter().map(|s| s.to_string()).collect());
        Processing::new(filter, &renames, select.as_deref(), infer)
    }

    fn run(processing: Processing, content: &Content, record: &str) -> Option<String> {
        let mut processor = Processor::new(Arc::new(processing));
        let mut buf = b"{\"before\":1}\n".to_vec();
        let start = buf.len();
        buf.extend_from_slice(record.as_bytes());
        match processor.apply(content, &mut buf, start) {
            Step::Drop => None,
            Step::Keep(_) => Some(String::from_utf8(buf[start..].to_vec()).unwrap()),
        }
    }

    fn csv() -> Content {
        Content::Csv(Arc::new(
            CsvHeader::from_fields([&b"a"[..]].into_iter()).unwrap(),
        ))
    }

    #[test]
    fn filter_then_rename_then_select() {
        let p = processing(Some("a > 1"), &["a=x"], Some(&["b", "x", "none"]), false).unwrap();
        let out = run(p, &csv(), r#"{"a":"2","b":"y","c":"z"}"#);
        assert_eq!(out.as_deref(), Some(r#"{"b":"y","x":"2"}"#));
        let p = processing(Some("a > 1"), &[], None, false).unwrap();
        assert_eq!(run(p, &csv(), r#"{"a":"1"}"#), None);
    }

    #[test]
    fn the_renamed_field_wins_and_renames_may_swap() {
        let p = processing(None, &["a=b"], None, false).unwrap();
        assert_eq!(
            run(p, &csv(), r#"{"a":"1","b":"2","c":"3"}"#).as_deref(),
            Some(r#"{"b":"1","c":"3"}"#)
        );
        let p = processing(None, &["a=b", "b=a"], None, false).unwrap();
        assert_eq!(
            run(p, &csv(), r#"{"a":"1","b":"2"}"#).as_deref(),
            Some(r#"{"b":"1","a":"2"}"#)
        );
    }

    #[test]
    fn types_are_inferred_for_csv_and_lines_only() {
        let record = r#"{"n":"12","f":"1.5","t":"true","e":"","s":"007","j":"x"}"#;
        let typed = r#"{"n":12,"f":1.5,"t":true,"e":null,"s":"007","j":"x"}"#;
        let p = || processing(None, &[], None, true).unwrap();
        assert_eq!(run(p(), &csv(), record).as_deref(), Some(typed));
        assert_eq!(run(p(), &Content::Jsonl, record).as_deref(), Some(record));
        let p = processing(Some("n > 9.5"), &[], None, true).unwrap();
        assert_eq!(run(p, &csv(), record).as_deref(), Some(typed));
    }

    #[test]
    fn a_filter_alone_leaves_the_record_as_it_was() {
        let p = processing(Some("a == 1"), &[], None, false).unwrap();
        let record = r#"{ "a" : 1 }"#;
        assert_eq!(run(p, &Content::Jsonl, record).as_deref(), Some(record));
    }

    #[test]
    fn flags_that_cannot_work_are_refused() {
        let refused = |renames: &[&str], select: Option<&[&str]>| {
            processing(None, renames, select, false).unwrap_err()
        };
        assert_eq!(refused(&["a"], None), "--rename a: expected OLD=NEW");
        assert_eq!(refused(&["=b"], None), "--rename =b: expected OLD=NEW");
        assert_eq!(
            refused(&["a=b", "a=c"], None),
            "--rename: `a` is renamed twice"
        );
        assert_eq!(
            refused(&["a=c", "b=c"], None),
            "--rename: `a` and `b` are both renamed to `c`"
        );
        assert_eq!(
            refused(&["a=b"], Some(&["a", "b"])),
            "--select a: --rename renames `a` to `b`, and --select names the fields after \
             renaming: select `b`"
        );
        assert_eq!(
            refused(&[], Some(&["a", "a"])),
            "--select: `a` is named twice"
        );
        assert!(processing(None, &["a=b", "b=a"], Some(&["a", "b"]), false).is_ok());
        assert!(!Processing::default().is_active());
    }
}
