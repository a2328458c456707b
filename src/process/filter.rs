//! `--filter EXPR`: which records go on. An expression is read once, at
//! start (`parse`, which refuses a bad one with a caret under the spot),
//! and evaluated on every record's fields, by their input names.
//!
//! A comparison is numeric when both sides are numbers (a JSON number, or
//! a string that reads as one, as `--infer-types` reads them), else it
//! compares the texts. A field the record lacks makes its comparison
//! false, whatever the operator (`not` turns that into true).

mod parse;

use std::cmp::Ordering;

use regex::Regex;

pub use self::parse::ExprError;
use super::infer::{self, Number};
use super::value::Value;

/// A parsed `--filter` expression.
#[derive(Debug)]
pub struct Filter {
    tree: Expr,
}

impl Filter {
    /// Reads `expr`; a bad one is refused with where and why.
    pub fn parse(expr: &str) -> Result<Filter, ExprError> {
        Ok(Filter {
            tree: parse::parse(expr)?,
        })
    }

    /// Whether a record passes; `field` gives a field's value by its name
    /// (`None`: the record lacks it).
    pub(super) fn matches<'a>(&self, field: &impl Fn(&str) -> Option<Value<'a>>) -> bool {
        self.tree.eval(field)
    }
}

/// The expression's tree.
#[derive(Debug)]
enum Expr {
    Compare(Compare),
    Not(Box<Expr>),
    /// A chain of `and`s, flat: a long chain costs no stack depth.
    All(Vec<Expr>),
    /// A chain of `or`s, flat.
    Any(Vec<Expr>),
}

impl Expr {
    fn eval<'a>(&self, field: &impl Fn(&str) -> Option<Value<'a>>) -> bool {
        match self {
            Expr::Compare(compare) => {
                field(&compare.field).is_some_and(|value| compare.holds(&value))
            }
            Expr::Not(inner) => !inner.eval(field),
            Expr::All(all) => all.iter().all(|expr| expr.eval(field)),
            Expr::Any(any) => any.iter().any(|expr| expr.eval(field)),
        }
    }
}

/// `field OP value`.
#[derive(Debug)]
struct Compare {
    field: String,
    op: Op,
    value: Literal,
}

/// A comparison's operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Matches,
}

impl Op {
    fn text(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::Matches => "=~",
        }
    }
}

/// The right side of a comparison.
#[derive(Debug)]
enum Literal {
    /// A number as written, and its value.
    Number(String, Number),
    /// A quoted string, and the number it reads as, if any (then
    /// compared as a number with a field that is one).
    Str(String, Option<Number>),
    /// `=~`'s regular expression.
    Regex(Regex),
}

impl Literal {
    /// The number `text` reads as, if it is one.
    fn number(text: &str) -> Option<Literal> {
        infer::number(text).map(|number| Literal::Number(text.to_string(), number))
    }

    /// A quoted string.
    fn string(text: String) -> Literal {
        let number = infer::number(&text);
        Literal::Str(text, number)
    }
}

impl Compare {
    fn holds(&self, value: &Value<'_>) -> bool {
        let text = value.text();
        let (literal_text, literal_number) = match &self.value {
            Literal::Regex(regex) => return regex.is_match(&text),
            Literal::Number(text, number) => (text.as_str(), Some(*number)),
            Literal::Str(text, number) => (text.as_str(), *number),
        };
        if self.op == Op::Contains {
            return text.contains(literal_text);
        }
        let order = match (value.number(), literal_number) {
            (Some(left), Some(right)) => left.compare(right),
            _ => Some(text.as_ref().cmp(literal_text)),
        };
        // NaN cannot be read, so every pair of numbers is ordered.
        let Some(order) = order else { return false };
        match self.op {
            Op::Eq => order == Ordering::Equal,
            Op::Ne => order != Ordering::Equal,
            Op::Lt => order == Ordering::Less,
            Op::Le => order != Ordering::Greater,
            Op::Gt => order == Ordering::Greater,
            Op::Ge => order != Ordering::Less,
            Op::Contains | Op::Matches => unreachable!("handled above"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn passes(expr: &str, record: &[(&str, Value<'static>)]) -> bool {
        let filter = Filter::parse(expr).unwrap();
        filter.matches(&|name: &str| {
            record
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
        })
    }

    fn text(s: &'static str) -> Value<'static> {
        Value::Text(Cow::Borrowed(s))
    }

    #[test]
    fn numbers_compare_as_numbers_and_strings_as_strings() {
        let record = [("age", text("42")), ("name", text("Bob"))];
        assert!(passes("age > 9", &record));
        assert!(!passes("age < 9", &record));
        assert!(passes("age == 42.0", &record));
        assert!(passes("age == \"42\"", &record));
        assert!(passes("name > \"Al\"", &record));
        assert!(passes("name != \"bob\"", &record));
        assert!(passes("age >= 42 and age <= 42", &record));
        let json = [("n", Value::Number(Cow::Borrowed("1e3")))];
        assert!(passes("n == 1000", &json));
        assert!(passes("n > 999.5", &json));
    }

    #[test]
    fn text_against_a_number_compares_texts() {
        let record = [("zip", text("007")), ("x", text("abc"))];
        // "007" is no number (a leading zero): "007" < "7" as text.
        assert!(passes("zip < 7", &record));
        assert!(!passes("zip == 7", &record));
        assert!(passes("x > 5", &record));
    }

    #[test]
    fn contains_regex_and_logic() {
        let record = [("msg", text("disk full on /var")), ("level", text("warn"))];
        assert!(passes("msg contains \"full\"", &record));
        assert!(passes("msg =~ \"^disk .* /v\"", &record));
        assert!(!passes("msg =~ \"^full\"", &record));
        assert!(passes(
            "not (level == \"info\" or level == \"debug\")",
            &record
        ));
        assert!(passes(
            "level == \"x\" or level == \"warn\" and msg contains \"disk\"",
            &record
        ));
    }

    #[test]
    fn a_missing_field_makes_its_comparison_false() {
        let record = [("a", text("1"))];
        assert!(!passes("b == 1", &record));
        assert!(!passes("b != 1", &record));
        assert!(passes("not b == 1", &record));
        assert!(passes("b == 1 or a == 1", &record));
    }

    #[test]
    fn bool_null_and_nested_values_compare_as_text() {
        let record = [
            ("ok", Value::Bool(true)),
            ("none", Value::Null),
            ("obj", Value::Nested("{\"x\":1}")),
        ];
        assert!(passes("ok == \"true\"", &record));
        assert!(passes("none == \"\"", &record));
        assert!(passes("obj contains \"x\"", &record));
    }
}
