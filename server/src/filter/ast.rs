//! The expression tree RocketMQ builds from a selector, with the checks its
//! `ComparisonExpression`/`SelectorParser` factories make, and a
//! straightforward interpreter of it ([`Expr::evaluate`], the reference the
//! compiled filter is checked against).

use std::cmp::Ordering;

use super::parse::{Lit, RelOp, Syn, TextKw};
use super::value::{java_compare, java_double, Val};

/// A literal of the expression (RocketMQ's `ConstantExpression` values).
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `NULL`.
    Null,
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// A decimal literal that fits a Java `int`.
    Int(i32),
    /// A decimal literal beyond `int` (or with an `L` suffix beyond it).
    Long(i64),
    /// A floating point literal.
    Double(f64),
    /// A quoted string.
    Str(String),
}

/// Ordering operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `<`
    Lt,
    /// `<=`
    Le,
}

impl Rel {
    pub(crate) fn holds(self, o: Ordering) -> bool {
        match self {
            Rel::Gt => o == Ordering::Greater,
            Rel::Ge => o != Ordering::Less,
            Rel::Lt => o == Ordering::Less,
            Rel::Le => o != Ordering::Greater,
        }
    }
}

/// RocketMQ 5.x string operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextOp {
    /// `CONTAINS`
    Contains,
    /// `STARTSWITH`
    StartsWith,
    /// `ENDSWITH`
    EndsWith,
}

impl TextOp {
    pub(crate) fn test(self, value: &str, search: &str) -> bool {
        match self {
            TextOp::Contains => value.contains(search),
            TextOp::StartsWith => value.starts_with(search),
            TextOp::EndsWith => value.ends_with(search),
        }
    }
}

/// A compiled selector's tree, node for node the objects RocketMQ builds:
/// `BETWEEN` is an `AND` of `>=` and `<=` (`NOT BETWEEN` an `OR` of `<`
/// and `>`), `<>` is `NOT =`, `IS NULL` is `= NULL` without the operand check.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Const(Literal),
    /// A message property (user or system, e.g. `TAGS`).
    Property(String),
    /// Unary minus (`null` for a non-number).
    Negate(Box<Expr>),
    /// `NOT` (three-valued).
    Not(Box<Expr>),
    /// A property used as a condition: true only for a Boolean value, which
    /// a property (a string) never is.
    BooleanCast(Box<Expr>),
    /// `AND` (three-valued, left first).
    And(Box<Expr>, Box<Expr>),
    /// `OR` (three-valued, left first).
    Or(Box<Expr>, Box<Expr>),
    /// `=`: null when only the left side is null, false when only the right is.
    Equal(Box<Expr>, Box<Expr>),
    /// `>`, `>=`, `<`, `<=`: null when a side is null.
    Compare(Rel, Box<Expr>, Box<Expr>),
    /// `[NOT] IN ('a', ...)` over a property.
    In {
        /// The property.
        property: String,
        /// The listed strings.
        values: Vec<String>,
        /// `NOT IN`.
        not: bool,
    },
    /// `[NOT] CONTAINS|STARTSWITH|ENDSWITH 'text'`.
    Text {
        /// The operator.
        op: TextOp,
        /// `NOT ...`.
        not: bool,
        /// What is searched.
        operand: Box<Expr>,
        /// The literal searched for.
        search: String,
    },
}

/// Why a selector does not compile: a byte offset into it and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuildError {
    pub at: usize,
    pub message: String,
}

/// Evaluation failed where RocketMQ's throws (a string that does not parse as
/// the number it is compared with, strings ordered that are not numbers): the
/// message does not match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalError;

impl Expr {
    /// `BooleanExpression` in RocketMQ's class hierarchy.
    fn is_boolean(&self) -> bool {
        match self {
            Expr::Const(l) => matches!(l, Literal::Bool(_) | Literal::Null),
            Expr::Property(_) | Expr::Negate(_) => false,
            _ => true,
        }
    }

    /// Evaluate over properties (the reference interpreter): `Ok(Val::Null)`
    /// is SQL's unknown.
    ///
    /// # Errors
    /// [`EvalError`] where RocketMQ's evaluation throws.
    pub fn evaluate<'a>(
        &'a self,
        props: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Result<Val<'a>, EvalError> {
        Ok(match self {
            Expr::Const(l) => Val::of_literal(l),
            Expr::Property(name) => props(name).map_or(Val::Null, Val::Str),
            Expr::Negate(e) => e.evaluate(props)?.negate(),
            Expr::Not(e) => match e.evaluate(props)? {
                Val::Bool(b) => Val::Bool(!b),
                _ => Val::Null,
            },
            Expr::BooleanCast(e) => match e.evaluate(props)? {
                Val::Null => Val::Null,
                Val::Bool(b) => Val::Bool(b),
                _ => Val::Bool(false),
            },
            Expr::And(l, r) => {
                let lv = l.evaluate(props)?;
                if lv == Val::Bool(false) {
                    return Ok(Val::Bool(false));
                }
                let rv = r.evaluate(props)?;
                if rv == Val::Bool(false) {
                    return Ok(Val::Bool(false));
                }
                if lv == Val::Null || rv == Val::Null {
                    Val::Null
                } else {
                    Val::Bool(true)
                }
            }
            Expr::Or(l, r) => {
                let lv = l.evaluate(props)?;
                if lv == Val::Bool(true) {
                    return Ok(Val::Bool(true));
                }
                let rv = r.evaluate(props)?;
                if rv == Val::Bool(true) {
                    return Ok(Val::Bool(true));
                }
                if lv == Val::Null || rv == Val::Null {
                    Val::Null
                } else {
                    Val::Bool(false)
                }
            }
            Expr::Equal(l, r) => {
                let lv = l.evaluate(props)?;
                let rv = r.evaluate(props)?;
                equal(&lv, &rv)?
            }
            Expr::Compare(op, l, r) => {
                let lv = l.evaluate(props)?;
                if lv == Val::Null {
                    return Ok(Val::Null);
                }
                let rv = r.evaluate(props)?;
                if rv == Val::Null {
                    return Ok(Val::Null);
                }
                Val::Bool(op.holds(order(&lv, &rv)?))
            }
            Expr::In {
                property,
                values,
                not,
            } => match props(property) {
                None => Val::Null,
                Some(v) => Val::Bool(values.iter().any(|x| x == v) ^ not),
            },
            Expr::Text {
                op,
                not,
                operand,
                search,
            } => {
                if search.is_empty() {
                    return Ok(Val::Bool(false));
                }
                match operand.evaluate(props)? {
                    Val::Str(s) => Val::Bool(op.test(s, search) ^ not),
                    _ => Val::Bool(false),
                }
            }
        })
    }
}

/// RocketMQ's `doCreateEqual` evaluation.
pub(crate) fn equal(lv: &Val<'_>, rv: &Val<'_>) -> Result<Val<'static>, EvalError> {
    match (lv.is_null(), rv.is_null()) {
        (true, true) => return Ok(Val::Bool(true)),
        (true, false) => return Ok(Val::Null),
        (false, true) => return Ok(Val::Bool(false)),
        (false, false) => {}
    }
    if lv.java_equals(rv) {
        return Ok(Val::Bool(true));
    }
    Ok(Val::Bool(java_compare(lv, rv)? == Ordering::Equal))
}

/// RocketMQ's ordering comparison of two non-null values: two strings are
/// compared as doubles (or fail), anything else through `__compare`.
pub(crate) fn order(lv: &Val<'_>, rv: &Val<'_>) -> Result<Ordering, EvalError> {
    if let (Val::Str(a), Val::Str(b)) = (lv, rv) {
        let (a, b) = (java_double(a)?, java_double(b)?);
        return Ok(super::value::java_double_cmp(a, b));
    }
    java_compare(lv, rv)
}

fn lit(l: &Lit, at: usize) -> Result<Literal, BuildError> {
    let err = |m: String| BuildError { at, message: m };
    Ok(match l {
        Lit::Str(s) => Literal::Str(s.clone()),
        Lit::True => Literal::Bool(true),
        Lit::False => Literal::Bool(false),
        Lit::Null => Literal::Null,
        Lit::Decimal(t) => {
            let t = t.trim_end_matches(['l', 'L']);
            let v: i64 = t
                .parse()
                .map_err(|_| err(format!("For input string: \"{t}\"")))?;
            match i32::try_from(v) {
                Ok(i) => Literal::Int(i),
                Err(_) => Literal::Long(v),
            }
        }
        Lit::Float(t) => {
            let v: f64 = t
                .parse()
                .map_err(|_| err(format!("For input string: \"{t}\"")))?;
            if v > f64::MAX {
                return Err(err(format!("{t} is greater than {}", f64::MAX)));
            }
            // Java's Double.MIN_VALUE is the smallest positive double: RocketMQ
            // refuses 0.0 (and anything that rounds to it) as a literal.
            if v < f64::from_bits(1) {
                return Err(err(format!("{t} is less than 4.9E-324")));
            }
            Literal::Double(v)
        }
    })
}

fn describe(e: &Expr) -> String {
    match e {
        Expr::Const(Literal::Str(s)) => format!("'{}'", s.replace('\'', "''")),
        Expr::Const(Literal::Null) => "NULL".into(),
        Expr::Const(Literal::Bool(b)) => if *b { "TRUE" } else { "FALSE" }.into(),
        Expr::Const(Literal::Int(i)) => i.to_string(),
        Expr::Const(Literal::Long(i)) => i.to_string(),
        Expr::Const(Literal::Double(d)) => d.to_string(),
        Expr::Property(p) => p.clone(),
        _ => "expression".into(),
    }
}

/// `asBooleanExpression`.
fn as_boolean(e: Expr, at: usize) -> Result<Expr, BuildError> {
    if e.is_boolean() {
        Ok(e)
    } else if matches!(e, Expr::Property(_)) {
        Ok(Expr::BooleanCast(Box::new(e)))
    } else {
        Err(BuildError {
            at,
            message: format!(
                "Expression will not result in a boolean value: {}",
                describe(&e)
            ),
        })
    }
}

/// `checkLessThanOperand`.
fn check_orderable(e: &Expr, at: usize) -> Result<(), BuildError> {
    let bad = match e {
        Expr::Const(l) => !matches!(l, Literal::Int(_) | Literal::Long(_) | Literal::Double(_)),
        _ => e.is_boolean(),
    };
    if bad {
        return Err(BuildError {
            at,
            message: format!("Value '{}' cannot be compared.", describe(e)),
        });
    }
    Ok(())
}

fn compare(op: Rel, l: Expr, r: Expr, at: usize) -> Result<Expr, BuildError> {
    check_orderable(&l, at)?;
    check_orderable(&r, at)?;
    Ok(Expr::Compare(op, Box::new(l), Box::new(r)))
}

/// `createEqual`: neither side the `NULL` literal; `TRUE`/`FALSE`/`NULL`
/// literal on the left of a non-boolean literal refused.
fn create_equal(l: Expr, r: Expr, at: usize) -> Result<Expr, BuildError> {
    for e in [&l, &r] {
        if *e == Expr::Const(Literal::Null) {
            return Err(BuildError {
                at,
                message: "'NULL' cannot be compared.".into(),
            });
        }
    }
    if let (Expr::Const(_), Expr::Const(_)) = (&l, &r) {
        if l.is_boolean() && !r.is_boolean() {
            return Err(BuildError {
                at,
                message: format!(
                    "'{}' cannot be compared with '{}'",
                    describe(&l),
                    describe(&r)
                ),
            });
        }
    }
    Ok(Expr::Equal(Box::new(l), Box::new(r)))
}

fn not(e: Expr) -> Expr {
    Expr::Not(Box::new(e))
}

fn boxed(l: Expr, r: Expr) -> (Box<Expr>, Box<Expr>) {
    (Box::new(l), Box::new(r))
}

/// Build the expression of a syntax tree, making RocketMQ's checks;
/// `len` is the input's length (positions are kept as bytes left).
pub(crate) fn build_top(s: &Syn, len: usize) -> Result<Expr, BuildError> {
    let e = build(s, len)?;
    as_boolean(e, 0)
}

fn build(s: &Syn, len: usize) -> Result<Expr, BuildError> {
    let pos = |rest: &usize| len - rest;
    Ok(match s {
        Syn::Lit(l, at) => Expr::Const(lit(l, pos(at))?),
        Syn::Prop(p, _) => Expr::Property(p.clone()),
        Syn::Neg(e, _) => Expr::Negate(Box::new(build(e, len)?)),
        Syn::Not(e, at) => not(as_boolean(build(e, len)?, pos(at))?),
        Syn::Or(l, r, at) => {
            let l = as_boolean(build(l, len)?, pos(at))?;
            let r = as_boolean(build(r, len)?, pos(at))?;
            let (l, r) = boxed(l, r);
            Expr::Or(l, r)
        }
        Syn::And(l, r, at) => {
            let l = as_boolean(build(l, len)?, pos(at))?;
            let r = as_boolean(build(r, len)?, pos(at))?;
            let (l, r) = boxed(l, r);
            Expr::And(l, r)
        }
        Syn::Eq(l, r, at) => create_equal(build(l, len)?, build(r, len)?, pos(at))?,
        Syn::Ne(l, r, at) => not(create_equal(build(l, len)?, build(r, len)?, pos(at))?),
        Syn::IsNull(e, negated, _) => {
            let eq = Expr::Equal(
                Box::new(build(e, len)?),
                Box::new(Expr::Const(Literal::Null)),
            );
            if *negated {
                not(eq)
            } else {
                eq
            }
        }
        Syn::Rel(op, l, r, at) => {
            let op = match op {
                RelOp::Gt => Rel::Gt,
                RelOp::Ge => Rel::Ge,
                RelOp::Lt => Rel::Lt,
                RelOp::Le => Rel::Le,
            };
            compare(op, build(l, len)?, build(r, len)?, pos(at))?
        }
        Syn::Between(v, lo, hi, negated, at) => {
            let at = pos(at);
            let (v, lo, hi) = (build(v, len)?, build(lo, len)?, build(hi, len)?);
            if *negated {
                let a = compare(Rel::Lt, v.clone(), lo, at)?;
                let b = compare(Rel::Gt, v, hi, at)?;
                let (a, b) = boxed(a, b);
                Expr::Or(a, b)
            } else {
                check_between_bounds(&lo, &hi, at)?;
                let a = compare(Rel::Ge, v.clone(), lo, at)?;
                let b = compare(Rel::Le, v, hi, at)?;
                let (a, b) = boxed(a, b);
                Expr::And(a, b)
            }
        }
        Syn::In(e, values, negated, at) => match build(e, len)? {
            Expr::Property(p) => Expr::In {
                property: p,
                values: values.clone(),
                not: *negated,
            },
            other => {
                return Err(BuildError {
                    at: pos(at),
                    message: format!(
                        "Expected a property for In expression, got: {}",
                        describe(&other)
                    ),
                })
            }
        },
        Syn::Text(k, e, search, negated, _) => Expr::Text {
            op: match k {
                TextKw::Contains => TextOp::Contains,
                TextKw::StartsWith => TextOp::StartsWith,
                TextKw::EndsWith => TextOp::EndsWith,
            },
            not: *negated,
            operand: Box::new(build(e, len)?),
            search: search.clone(),
        },
    })
}

/// `createBetween`'s check of two literal bounds: not null, low <= high.
fn check_between_bounds(lo: &Expr, hi: &Expr, at: usize) -> Result<(), BuildError> {
    let (Expr::Const(l), Expr::Const(h)) = (lo, hi) else {
        return Ok(());
    };
    let err = |m: String| BuildError { at, message: m };
    if *l == Literal::Null || *h == Literal::Null {
        return Err(err(
            "Illegal values of between, values can not be null!".into()
        ));
    }
    let (lv, hv) = (Val::of_literal(l), Val::of_literal(h));
    match java_compare(&hv, &lv) {
        Ok(Ordering::Less) => Err(err(format!(
            "Illegal values of between, left value({}) must less than or equal to right value({})",
            describe(lo),
            describe(hi)
        ))),
        Ok(_) => Ok(()),
        Err(_) => Err(err(format!(
            "Illegal values of between: {} and {}",
            describe(lo),
            describe(hi)
        ))),
    }
}
