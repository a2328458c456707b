//! `--filter`'s expressions, read by a small recursive-descent parser:
//!
//! ```text
//! expr       := and ("or" and)*
//! and        := unary ("and" unary)*
//! unary      := "not" unary | "(" expr ")" | comparison
//! comparison := field OP value
//! field      := NAME | "." STRING          (NAME: letters, digits, _; not a digit first)
//! OP         := == != < <= > >= contains =~
//! value      := NUMBER | STRING            (STRING: "..." or '...', \ escapes the next character)
//! ```
//!
//! A bad expression is an [`ExprError`]: where (a byte offset) and what was
//! expected there.

use regex::Regex;

use super::{Compare, Expr, Literal, Op};

/// A bad `--filter` expression: the spot, and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    /// The expression as given.
    pub expr: String,
    /// Byte offset of the spot in `expr`.
    pub at: usize,
    /// What was expected (or what is wrong) there.
    pub message: String,
}

impl std::fmt::Display for ExprError {
    /// The message, then the expression with a caret under the spot.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let column = self.expr[..self.at].chars().count();
        write!(
            f,
            "--filter: {}\n  {}\n  {}^",
            self.message,
            self.expr,
            " ".repeat(column)
        )
    }
}

/// One token and where it starts.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Name(String),
    /// `."odd name"`.
    QuotedName(String),
    Str(String),
    Number(String),
    Op(Op),
    Open,
    Close,
    End,
}

/// How a token reads in a message.
fn describe(token: &Token) -> String {
    match token {
        Token::Name(name) => format!("`{name}`"),
        Token::QuotedName(name) => format!("the field .{name:?}"),
        Token::Str(text) => format!("the string {text:?}"),
        Token::Number(number) => format!("the number {number}"),
        Token::Op(op) => format!("`{}`", op.text()),
        Token::Open => "`(`".into(),
        Token::Close => "`)`".into(),
        Token::End => "the end".into(),
    }
}

const OPERATORS: &str = "==, !=, <, <=, >, >=, contains or =~";

/// Most `(` and `not` one inside another: the parser and the evaluation
/// recurse once per level, on a worker's stack.
const MAX_NESTING: usize = 64;

/// Reads `expr` into its tree.
pub(super) fn parse(expr: &str) -> Result<Expr, ExprError> {
    let tokens = tokens(expr)?;
    let mut parser = Parser {
        expr,
        tokens,
        next: 0,
        nesting: 0,
    };
    let tree = parser.or()?;
    match parser.peek() {
        Token::End => Ok(tree),
        Token::Close => Err(parser.error_here("this `)` closes no `(`".into())),
        other => {
            let found = describe(other);
            Err(parser.error_here(format!("expected `and`, `or` or the end, found {found}")))
        }
    }
}

struct Parser<'a> {
    expr: &'a str,
    tokens: Vec<(Token, usize)>,
    next: usize,
    /// `(` and `not` open around the token being read.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.tokens[self.next].0
    }

    fn at(&self) -> usize {
        self.tokens[self.next].1
    }

    fn advance(&mut self) -> (Token, usize) {
        let token = self.tokens[self.next].clone();
        if token.0 != Token::End {
            self.next += 1;
        }
        token
    }

    fn error_here(&self, message: String) -> ExprError {
        error(self.expr, self.at(), message)
    }

    fn is_word(&self, word: &str) -> bool {
        matches!(self.peek(), Token::Name(name) if name == word)
    }

    fn or(&mut self) -> Result<Expr, ExprError> {
        let mut any = vec![self.and()?];
        while self.is_word("or") {
            self.advance();
            any.push(self.and()?);
        }
        Ok(match any.len() {
            1 => any.pop().expect("one"),
            _ => Expr::Any(any),
        })
    }

    fn and(&mut self) -> Result<Expr, ExprError> {
        let mut all = vec![self.unary()?];
        while self.is_word("and") {
            self.advance();
            all.push(self.unary()?);
        }
        Ok(match all.len() {
            1 => all.pop().expect("one"),
            _ => Expr::All(all),
        })
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        if self.is_word("not") || *self.peek() == Token::Open {
            if self.nesting == MAX_NESTING {
                return Err(self.error_here(format!(
                    "more than {MAX_NESTING} `(` and `not` one inside another"
                )));
            }
            self.nesting += 1;
            let inner = self.nested();
            self.nesting -= 1;
            return inner;
        }
        self.comparison()
    }

    /// A `not` or a parenthesised expression.
    fn nested(&mut self) -> Result<Expr, ExprError> {
        if self.is_word("not") {
            self.advance();
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        let (_, open_at) = self.advance();
        let inner = self.or()?;
        if *self.peek() != Token::Close {
            let column = self.expr[..open_at].chars().count() + 1;
            let found = describe(self.peek());
            return Err(self.error_here(format!(
                "expected `)` to close the `(` at column {column}, found {found}"
            )));
        }
        self.advance();
        Ok(inner)
    }

    fn comparison(&mut self) -> Result<Expr, ExprError> {
        let field = match self.peek() {
            Token::Name(name) if !is_keyword(name) => name.clone(),
            Token::QuotedName(name) => name.clone(),
            other => {
                let found = describe(other);
                return Err(self.error_here(format!(
                    "expected a field name (or `not`, `(`), found {found}"
                )));
            }
        };
        self.advance();
        let op = match self.peek() {
            Token::Op(op) => *op,
            Token::Name(name) if name == "contains" => Op::Contains,
            other => {
                let found = describe(other);
                return Err(self.error_here(format!(
                    "expected an operator ({OPERATORS}) after the field `{field}`, found {found}"
                )));
            }
        };
        self.advance();
        let value_at = self.at();
        let value = match self.advance().0 {
            Token::Number(number) if op != Op::Matches => {
                Literal::number(&number).expect("checked when read")
            }
            Token::Str(text) if op == Op::Matches => {
                let regex = Regex::new(&text).map_err(|bad| {
                    error(
                        self.expr,
                        value_at,
                        format!("bad regular expression: {}", regex_reason(&bad)),
                    )
                })?;
                Literal::Regex(regex)
            }
            Token::Str(text) => Literal::string(text),
            other => {
                let wanted = match op {
                    Op::Matches => "a quoted regular expression",
                    _ => "a number or a quoted string",
                };
                return Err(error(
                    self.expr,
                    value_at,
                    format!(
                        "expected {wanted} after `{}`, found {}",
                        op.text(),
                        describe(&other)
                    ),
                ));
            }
        };
        Ok(Expr::Compare(Compare { field, op, value }))
    }
}

fn is_keyword(name: &str) -> bool {
    matches!(name, "and" | "or" | "not" | "contains")
}

/// The last line of the regex crate's message ("error: unclosed group"),
/// without its prefix: the rest repeats the pattern with its own caret.
fn regex_reason(error: &regex::Error) -> String {
    let text = error.to_string();
    let last = text.lines().last().unwrap_or_default();
    last.strip_prefix("error: ").unwrap_or(last).to_string()
}

fn error(expr: &str, at: usize, message: String) -> ExprError {
    ExprError {
        expr: expr.to_string(),
        at,
        message,
    }
}

/// Cuts `expr` into tokens, each with its byte offset; the last is `End`.
fn tokens(expr: &str) -> Result<Vec<(Token, usize)>, ExprError> {
    let bytes = expr.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let byte = bytes[at];
        let token = match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {
                at += 1;
                continue;
            }
            b'(' => {
                at += 1;
                Token::Open
            }
            b')' => {
                at += 1;
                Token::Close
            }
            b'"' | b'\'' => {
                let (text, end) = string(expr, at)?;
                at = end;
                Token::Str(text)
            }
            b'.' => match bytes.get(at + 1) {
                Some(b'"' | b'\'') => {
                    let (text, end) = string(expr, at + 1)?;
                    at = end;
                    Token::QuotedName(text)
                }
                _ => {
                    return Err(error(
                        expr,
                        at + 1,
                        "expected a quoted field name after `.` (as in .\"first name\")".into(),
                    ))
                }
            },
            b'0'..=b'9' | b'-' => {
                let end = number_end(bytes, at);
                let text = &expr[start..end];
                if Literal::number(text).is_none() {
                    return Err(error(expr, at, format!("`{text}` is not a number")));
                }
                at = end;
                Token::Number(text.to_string())
            }
            b'=' | b'!' | b'<' | b'>' => {
                let (op, len) = operator(&bytes[at..]).ok_or_else(|| {
                    let end = bytes[at..]
                        .iter()
                        .position(|b| !b"=!<>~".contains(b))
                        .map_or(bytes.len(), |len| at + len);
                    error(
                        expr,
                        at,
                        format!(
                            "unknown operator `{}`: expected {OPERATORS}",
                            &expr[at..end]
                        ),
                    )
                })?;
                at += len;
                Token::Op(op)
            }
            _ if byte == b'_' || byte.is_ascii_alphabetic() => {
                let end = bytes[at..]
                    .iter()
                    .position(|b| !(*b == b'_' || b.is_ascii_alphanumeric()))
                    .map_or(bytes.len(), |len| at + len);
                at = end;
                Token::Name(expr[start..end].to_string())
            }
            _ => {
                let character = expr[at..].chars().next().expect("not at the end");
                return Err(error(
                    expr,
                    at,
                    format!("unexpected `{character}`: expected a field name, an operator, a value, `(` or `)`"),
                ));
            }
        };
        found.push((token, start));
    }
    found.push((Token::End, bytes.len()));
    Ok(found)
}

/// The operator at the start of `rest` (exactly), and its length.
fn operator(rest: &[u8]) -> Option<(Op, usize)> {
    let two = rest.get(..2);
    let (op, len) = match (rest[0], two) {
        (_, Some(b"==")) => (Op::Eq, 2),
        (_, Some(b"!=")) => (Op::Ne, 2),
        (_, Some(b"<=")) => (Op::Le, 2),
        (_, Some(b">=")) => (Op::Ge, 2),
        (_, Some(b"=~")) => (Op::Matches, 2),
        (b'<', _) => (Op::Lt, 1),
        (b'>', _) => (Op::Gt, 1),
        _ => return None,
    };
    // `===`, `<>`, `=>`, `!==`: no operator of ours.
    match rest.get(len) {
        Some(b'=' | b'!' | b'<' | b'>' | b'~') => None,
        _ => Some((op, len)),
    }
}

/// Where a number starting at `at` ends: digits, `.`, an exponent, letters
/// (so `12ab` is one bad number rather than two tokens).
fn number_end(bytes: &[u8], at: usize) -> usize {
    let mut end = at + 1;
    while let Some(&byte) = bytes.get(end) {
        let sign_of_exponent = matches!(byte, b'+' | b'-') && matches!(bytes[end - 1], b'e' | b'E');
        if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'_' || sign_of_exponent {
            end += 1;
        } else {
            break;
        }
    }
    end
}

/// The quoted string starting at `at` (its quote) and where it ends.
fn string(expr: &str, at: usize) -> Result<(String, usize), ExprError> {
    let quote = expr.as_bytes()[at] as char;
    let mut text = String::new();
    let mut chars = expr[at + 1..].char_indices();
    while let Some((offset, character)) = chars.next() {
        match character {
            '\\' => match chars.next() {
                Some((_, escaped)) => {
                    // A regex keeps its escapes (`\d`); a quote or a
                    // backslash needs none in the text.
                    if escaped != quote && escaped != '\\' {
                        text.push('\\');
                    }
                    text.push(escaped);
                }
                None => break,
            },
            c if c == quote => return Ok((text, at + 1 + offset + 1)),
            c => text.push(c),
        }
    }
    Err(error(
        expr,
        at,
        format!("this string has no closing {quote}"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(expr: &str) -> String {
        parse(expr).unwrap_err().to_string()
    }

    #[test]
    fn precedence_not_and_or() {
        let tree = parse("not a == 1 and b > 2 or c contains \"x\"").unwrap();
        let text = format!("{tree:?}");
        assert!(text.starts_with("Any([All([Not("), "{text}");
        let grouped = format!("{:?}", parse("a == 1 and (b == 2 or c == 3)").unwrap());
        assert!(grouped.starts_with("All("), "{grouped}");
    }

    #[test]
    fn long_chains_are_flat_and_deep_nesting_is_refused() {
        // 100,000 comparisons in one chain: one level, whatever its length.
        let chain = vec!["age > 1"; 100_000].join(" and ");
        match parse(&chain).unwrap() {
            Expr::All(all) => assert_eq!(all.len(), 100_000),
            other => panic!("{other:?}"),
        }
        let nested = |depth: usize| format!("{}a == 1{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_NESTING)).is_ok());
        let message = refused(&nested(MAX_NESTING + 1));
        assert!(
            message.starts_with("--filter: more than 64 `(` and `not` one inside another\n"),
            "{message}"
        );
        let nots = format!("{}a == 1", "not ".repeat(10_000));
        assert!(refused(&nots).starts_with("--filter: more than 64 `(` and `not`"));
    }

    #[test]
    fn quoted_field_names_and_strings() {
        let tree = parse(r#"."first name" == 'O\'Hara'"#).unwrap();
        match tree {
            Expr::Compare(compare) => {
                assert_eq!(compare.field, "first name");
                assert!(matches!(compare.value, Literal::Str(ref s, _) if s == "O'Hara"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_point_at_the_spot() {
        assert_eq!(
            refused("(age > 3"),
            "--filter: expected `)` to close the `(` at column 1, found the end\n  (age > 3\n          ^"
        );
        assert_eq!(
            refused("age = 3"),
            "--filter: unknown operator `=`: expected ==, !=, <, <=, >, >=, contains or =~\n  age = 3\n      ^"
        );
        assert_eq!(
            refused("age >= and x"),
            "--filter: expected a number or a quoted string after `>=`, found `and`\n  age >= and x\n         ^"
        );
        assert_eq!(
            refused(r#"name =~ "a(""#),
            "--filter: bad regular expression: unclosed group\n  name =~ \"a(\"\n          ^"
        );
        assert_eq!(
            refused("a == 1 b"),
            "--filter: expected `and`, `or` or the end, found `b`\n  a == 1 b\n         ^"
        );
        assert_eq!(
            refused(""),
            "--filter: expected a field name (or `not`, `(`), found the end\n  \n  ^"
        );
        assert_eq!(
            refused("a == \"x"),
            "--filter: this string has no closing \"\n  a == \"x\n       ^"
        );
        assert_eq!(
            refused("a =~ 3"),
            "--filter: expected a quoted regular expression after `=~`, found the number 3\n  a =~ 3\n       ^"
        );
        assert_eq!(
            refused("a == 1)"),
            "--filter: this `)` closes no `(`\n  a == 1)\n        ^"
        );
    }

    #[test]
    fn the_caret_counts_characters_not_bytes() {
        assert_eq!(
            refused("é == 1"),
            "--filter: unexpected `é`: expected a field name, an operator, a value, `(` or `)`\n  é == 1\n  ^"
        );
        assert_eq!(
            refused(".\"né\" ~ 1"),
            "--filter: unexpected `~`: expected a field name, an operator, a value, `(` or `)`\n  .\"né\" ~ 1\n        ^"
        );
    }

    #[test]
    fn numbers_are_checked() {
        assert_eq!(
            refused("a > 12ab"),
            "--filter: `12ab` is not a number\n  a > 12ab\n      ^"
        );
    }
}
