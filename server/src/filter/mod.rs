//! SQL92 property filters (`enablePropertyFilter=true`): RocketMQ's selector
//! language (`filter` module, `SelectorParser.jj` of 5.x) compiled once per
//! subscription and evaluated over each pulled message's properties.
//!
//! It lives in the server, not the engine: the selector language is a
//! broker concern (a subscription's expression, a pull's answer) and the
//! store stays protocol-free. The store only takes a compiled filter through
//! its generic [`ferromq_engine::RecordFilter`] hook and applies it to each
//! record it reads, as RocketMQ's store calls `isMatchedByCommitLog`: refused
//! records do not count against the batch, the next offset passes them.
//!
//! - `parse.rs` turns text into a syntax tree (winnow).
//! - [`Expr`] is the tree RocketMQ builds, with its construction checks, and
//!   a reference interpreter ([`Expr::evaluate`]).
//! - [`Sql92Filter`] is the compiled form the pull path uses: properties are
//!   resolved to slots in one pass over a record's raw properties (no map
//!   built, no body copied), `IN` lists are sets.
//!
//! Semantics follow RocketMQ's `ComparisonExpression`, `UnaryExpression` and
//! `LogicExpression`: three-valued logic (a missing property makes a
//! comparison unknown, and only TRUE matches), `IS NULL` true for a missing
//! property, strings compared with numbers converted to the number's type
//! (`'5' BETWEEN 1 AND 9` holds), two strings ordered as doubles, and an
//! evaluation that throws in Java (`'abc' > 1`) matching nothing. Known
//! differences, all on inputs clients do not send: Java's `valueOf` also
//! takes non-ASCII digits and hexadecimal doubles (here they fail to
//! convert); of a property given twice in one record the first counts (Java's
//! map keeps the last); error remarks are ferromq's own wording, with the
//! line and column.

mod ast;
mod parse;
mod value;

use std::collections::HashSet;

pub use ast::{EvalError, Expr, Literal, Rel, TextOp};
pub use value::Val;

use ast::{equal, order};

/// RocketMQ's expression type names.
pub mod expression_type {
    /// Tag expressions (`TagA || TagB`).
    pub const TAG: &str = "TAG";
    /// SQL92 property filters.
    pub const SQL92: &str = "SQL92";
}

/// True for an expression type handled as tags: empty or `TAG` (any case),
/// as RocketMQ's `ExpressionType.isTagType`.
pub fn is_tag_type(kind: Option<&str>) -> bool {
    kind.is_none_or(|k| k.is_empty() || k.eq_ignore_ascii_case(expression_type::TAG))
}

/// A selector that does not compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// 1-based line of the error.
    pub line: usize,
    /// 1-based column (characters) of the error.
    pub column: usize,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for CompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Invalid MessageSelector. {} at line {}, column {}.",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for CompileError {}

/// A compiled node: properties are slot numbers.
#[derive(Debug, Clone)]
enum Node {
    Const(Literal),
    Slot(usize),
    Negate(Box<Node>),
    Not(Box<Node>),
    BooleanCast(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Equal(Box<Node>, Box<Node>),
    Compare(Rel, Box<Node>, Box<Node>),
    In(usize, HashSet<String>, bool),
    Text(TextOp, bool, Box<Node>, String),
}

/// A compiled SQL92 selector.
#[derive(Debug, Clone)]
pub struct Sql92Filter {
    source: String,
    expr: Expr,
    root: Node,
    /// Property names, by slot.
    names: Vec<String>,
}

fn slot_of(names: &mut Vec<String>, name: &str) -> usize {
    names.iter().position(|n| n == name).unwrap_or_else(|| {
        names.push(name.to_string());
        names.len() - 1
    })
}

fn lower(e: &Expr, names: &mut Vec<String>) -> Node {
    let mut b = |x: &Expr| Box::new(lower(x, names));
    match e {
        Expr::Const(l) => Node::Const(l.clone()),
        Expr::Property(p) => Node::Slot(slot_of(names, p)),
        Expr::Negate(x) => Node::Negate(b(x)),
        Expr::Not(x) => Node::Not(b(x)),
        Expr::BooleanCast(x) => Node::BooleanCast(b(x)),
        Expr::And(l, r) => Node::And(b(l), b(r)),
        Expr::Or(l, r) => Node::Or(b(l), b(r)),
        Expr::Equal(l, r) => Node::Equal(b(l), b(r)),
        Expr::Compare(op, l, r) => Node::Compare(*op, b(l), b(r)),
        Expr::In {
            property,
            values,
            not,
        } => Node::In(
            slot_of(names, property),
            values.iter().cloned().collect(),
            *not,
        ),
        Expr::Text {
            op,
            not,
            operand,
            search,
        } => Node::Text(*op, *not, b(operand), search.clone()),
    }
}

impl Node {
    fn eval<'a>(&'a self, slots: &[Option<&'a str>]) -> Result<Val<'a>, EvalError> {
        Ok(match self {
            Node::Const(l) => Val::of_literal(l),
            Node::Slot(i) => slots[*i].map_or(Val::Null, Val::Str),
            Node::Negate(x) => x.eval(slots)?.negate(),
            Node::Not(x) => match x.eval(slots)? {
                Val::Bool(b) => Val::Bool(!b),
                _ => Val::Null,
            },
            Node::BooleanCast(x) => match x.eval(slots)? {
                Val::Null => Val::Null,
                Val::Bool(b) => Val::Bool(b),
                _ => Val::Bool(false),
            },
            Node::And(l, r) => match l.eval(slots)? {
                Val::Bool(false) => Val::Bool(false),
                lv => match (lv, r.eval(slots)?) {
                    (_, Val::Bool(false)) => Val::Bool(false),
                    (Val::Bool(true), Val::Bool(true)) => Val::Bool(true),
                    _ => Val::Null,
                },
            },
            Node::Or(l, r) => match l.eval(slots)? {
                Val::Bool(true) => Val::Bool(true),
                lv => match (lv, r.eval(slots)?) {
                    (_, Val::Bool(true)) => Val::Bool(true),
                    (Val::Bool(false), Val::Bool(false)) => Val::Bool(false),
                    _ => Val::Null,
                },
            },
            Node::Equal(l, r) => {
                let lv = l.eval(slots)?;
                equal(&lv, &r.eval(slots)?)?
            }
            Node::Compare(op, l, r) => {
                let lv = l.eval(slots)?;
                if lv.is_null() {
                    return Ok(Val::Null);
                }
                let rv = r.eval(slots)?;
                if rv.is_null() {
                    return Ok(Val::Null);
                }
                Val::Bool(op.holds(order(&lv, &rv)?))
            }
            Node::In(i, set, not) => match slots[*i] {
                None => Val::Null,
                Some(v) => Val::Bool(set.contains(v) ^ not),
            },
            Node::Text(op, not, x, search) => {
                if search.is_empty() {
                    return Ok(Val::Bool(false));
                }
                match x.eval(slots)? {
                    Val::Str(s) => Val::Bool(op.test(s, search) ^ not),
                    _ => Val::Bool(false),
                }
            }
        })
    }
}

impl Sql92Filter {
    /// Compile a selector.
    ///
    /// # Errors
    /// [`CompileError`] with the line and column where RocketMQ's parser
    /// (or one of its expression factories) refuses it.
    pub fn compile(source: &str) -> Result<Sql92Filter, CompileError> {
        let at = |offset: usize, message: String| {
            let (line, column) = parse::line_column(source, offset);
            CompileError {
                line,
                column,
                message,
            }
        };
        let syn = parse::parse(source).map_err(|(offset, expected)| {
            let token = parse::token_at(source, offset);
            let expected = expected.replace('\n', "; ");
            let what = if expected.is_empty() {
                String::new()
            } else {
                format!(" ({expected})")
            };
            at(offset, format!("Encountered \"{token}\"{what}"))
        })?;
        let expr = ast::build_top(&syn, source.len()).map_err(|e| at(e.at, e.message))?;
        let mut names = Vec::new();
        let root = lower(&expr, &mut names);
        Ok(Sql92Filter {
            source: source.to_string(),
            expr,
            root,
            names,
        })
    }

    /// The selector text.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The expression tree.
    pub fn expr(&self) -> &Expr {
        &self.expr
    }

    /// Evaluate with properties looked up by `get`: `Ok(Val::Null)` is unknown.
    ///
    /// # Errors
    /// [`EvalError`] where RocketMQ's evaluation throws.
    pub fn evaluate<'a>(
        &'a self,
        get: impl Fn(&str) -> Option<&'a str>,
    ) -> Result<Val<'a>, EvalError> {
        let slots: Vec<Option<&'a str>> = self.names.iter().map(|n| get(n)).collect();
        self.root.eval(&slots)
    }

    /// Whether a message with these properties matches (only TRUE does; an
    /// unknown result or an evaluation error does not, as RocketMQ's
    /// `ExpressionMessageFilter.isMatchedByCommitLog`).
    pub fn matches<'a>(&'a self, get: impl Fn(&str) -> Option<&'a str>) -> bool {
        matches!(self.evaluate(get), Ok(Val::Bool(true)))
    }

    /// Whether a stored record (commitlog format) matches, reading its raw
    /// properties (`key \x01 value \x02 ...`) in one pass. A record whose
    /// properties cannot be found does not match.
    pub fn matches_record(&self, record: &[u8]) -> bool {
        let Some(props) = record_properties(record) else {
            return false;
        };
        // Up to 8 names (most expressions) on the stack.
        let n = self.names.len();
        let mut stack: [Option<&str>; 8] = [None; 8];
        let mut heap;
        let slots: &mut [Option<&str>] = if n <= stack.len() {
            &mut stack[..n]
        } else {
            heap = vec![None; n];
            &mut heap
        };
        let mut missing = n;
        for seg in props.split(|b| *b == 2) {
            if missing == 0 {
                break;
            }
            let Some(i) = seg.iter().position(|b| *b == 1) else {
                continue;
            };
            let key = &seg[..i];
            let Some(slot) = self.names.iter().position(|n| n.as_bytes() == key) else {
                continue;
            };
            // The first occurrence wins, as the properties decoder; a value
            // that is not UTF-8 is left out, as it decodes to nothing.
            if slots[slot].is_none() {
                if let Ok(v) = std::str::from_utf8(&seg[i + 1..]) {
                    slots[slot] = Some(v);
                    missing -= 1;
                }
            }
        }
        matches!(self.root.eval(slots), Ok(Val::Bool(true)))
    }
}

/// The store applies the filter in its read (RocketMQ's
/// `isMatchedByCommitLog`): a record it refuses does not count against the
/// pull's batch.
impl ferromq_engine::RecordFilter for Sql92Filter {
    fn matches_record(&self, record: &[u8]) -> bool {
        Sql92Filter::matches_record(self, record)
    }
}

/// The raw properties of a commitlog record.
pub fn record_properties(rec: &[u8]) -> Option<&[u8]> {
    use ferromq_engine::message::sys_flag;
    let be_i32 = |at: usize| -> Option<i32> {
        Some(i32::from_be_bytes(rec.get(at..at + 4)?.try_into().ok()?))
    };
    let sys = be_i32(36)?;
    let born = if sys & sys_flag::BORNHOST_V6 != 0 {
        20
    } else {
        8
    };
    let store = if sys & sys_flag::STOREHOST_V6 != 0 {
        20
    } else {
        8
    };
    // born timestamp at 40, born host at 48, store timestamp, store host,
    // reconsume times, prepared transaction offset, then the body.
    let body_len_at = 48 + born + 8 + store + 4 + 8;
    let body_len = usize::try_from(be_i32(body_len_at)?).ok()?;
    let topic_len_at = body_len_at + 4 + body_len;
    let topic_len = usize::from(*rec.get(topic_len_at)?);
    let props_len_at = topic_len_at + 1 + topic_len;
    let b = rec.get(props_len_at..props_len_at + 2)?;
    let props_len = usize::try_from(i16::from_be_bytes([b[0], b[1]])).ok()?;
    rec.get(props_len_at + 2..props_len_at + 2 + props_len)
}

#[cfg(test)]
mod tests;
