//! Values during evaluation and RocketMQ's (Java's) comparison rules between
//! them: `ComparisonExpression.__compare` with `convertStringExpressions`
//! on (as `SelectorParser.parse` sets it), `Integer.valueOf`,
//! `Long.valueOf`, `Double.valueOf` for strings compared with numbers.

use std::cmp::Ordering;

use super::ast::{EvalError, Literal};

/// A value during evaluation: the Java types RocketMQ's expressions yield.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val<'a> {
    /// `null` (unknown).
    Null,
    /// `Boolean`.
    Bool(bool),
    /// `Integer`.
    Int(i32),
    /// `Long`.
    Long(i64),
    /// `Double`.
    Double(f64),
    /// `String` (property values are always strings).
    Str(&'a str),
}

impl<'a> Val<'a> {
    /// A literal's value.
    pub fn of_literal(l: &'a Literal) -> Val<'a> {
        match l {
            Literal::Null => Val::Null,
            Literal::Bool(b) => Val::Bool(*b),
            Literal::Int(i) => Val::Int(*i),
            Literal::Long(i) => Val::Long(*i),
            Literal::Double(d) => Val::Double(*d),
            Literal::Str(s) => Val::Str(s),
        }
    }

    /// Null?
    pub fn is_null(&self) -> bool {
        matches!(self, Val::Null)
    }

    /// `UnaryExpression.createNegate`: numbers negated (Java wrapping), null
    /// for anything else.
    pub fn negate(self) -> Val<'a> {
        match self {
            Val::Int(i) => Val::Int(i.wrapping_neg()),
            Val::Long(i) => Val::Long(i.wrapping_neg()),
            Val::Double(d) => Val::Double(-d),
            _ => Val::Null,
        }
    }

    /// Java's `equals` between two values (same class and equal; doubles by
    /// bits, as `Double.equals`, NaN canonical).
    pub fn java_equals(&self, other: &Val<'_>) -> bool {
        match (self, other) {
            (Val::Bool(a), Val::Bool(b)) => a == b,
            (Val::Int(a), Val::Int(b)) => a == b,
            (Val::Long(a), Val::Long(b)) => a == b,
            (Val::Double(a), Val::Double(b)) => java_double_cmp(*a, *b) == Ordering::Equal,
            (Val::Str(a), Val::Str(b)) => a == b,
            _ => false,
        }
    }
}

/// `Double.compare`: NaN above everything (and equal to itself), -0.0 below 0.0.
pub fn java_double_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => a.total_cmp(&b),
    }
}

/// `Integer.valueOf(String)` (ASCII digits, optional sign).
pub fn java_int(s: &str) -> Result<i32, EvalError> {
    s.parse().map_err(|_| EvalError)
}

/// `Long.valueOf(String)`.
pub fn java_long(s: &str) -> Result<i64, EvalError> {
    s.parse().map_err(|_| EvalError)
}

/// `Double.valueOf(String)`: blanks (chars up to space) trimmed, `NaN`,
/// `Infinity`, decimal forms with an optional `f`/`F`/`d`/`D` suffix.
/// (Java's hexadecimal floats are not taken.)
pub fn java_double(s: &str) -> Result<f64, EvalError> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let v = match body {
        "NaN" => f64::NAN,
        "Infinity" => f64::INFINITY,
        _ => {
            let digits = body.strip_suffix(['f', 'F', 'd', 'D']).unwrap_or(body);
            let ok_chars = digits
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
            let has_digit = digits
                .split(['e', 'E'])
                .next()
                .is_some_and(|m| m.bytes().any(|b| b.is_ascii_digit()));
            if !ok_chars || !has_digit || digits.starts_with(['+', '-']) {
                return Err(EvalError);
            }
            // Rust does not take `5.e3` (Java does).
            let fixed;
            let digits = if digits.contains(".e") || digits.contains(".E") {
                fixed = digits.replacen('.', ".0", 1);
                fixed.as_str()
            } else {
                digits
            };
            digits.parse::<f64>().map_err(|_| EvalError)?
        }
    };
    Ok(if neg { -v } else { v })
}

/// `ComparisonExpression.__compare(lv, rv, true)` of two non-null values:
/// numbers widened (int → long → double), a string converted to the other
/// side's type (failing as Java's `valueOf` does), `-1` (Less) between
/// types it does not convert.
///
/// # Errors
/// [`EvalError`] where Java throws (a string that is not such a number; a
/// Boolean on the left of a string, a `ClassCastException` there).
pub fn java_compare(lv: &Val<'_>, rv: &Val<'_>) -> Result<Ordering, EvalError> {
    use Val::*;
    Ok(match (*lv, *rv) {
        (Bool(a), Bool(b)) => a.cmp(&b),
        (Int(a), Int(b)) => a.cmp(&b),
        (Long(a), Long(b)) => a.cmp(&b),
        (Double(a), Double(b)) => java_double_cmp(a, b),
        (Str(a), Str(b)) => a.cmp(b),
        (Bool(_), Str(_)) => return Err(EvalError),
        (Int(a), Long(b)) => i64::from(a).cmp(&b),
        (Int(a), Double(b)) => java_double_cmp(f64::from(a), b),
        (Int(a), Str(b)) => a.cmp(&java_int(b)?),
        (Long(a), Int(b)) => a.cmp(&i64::from(b)),
        (Long(a), Double(b)) => java_double_cmp(a as f64, b),
        (Long(a), Str(b)) => a.cmp(&java_long(b)?),
        (Double(a), Int(b)) => java_double_cmp(a, f64::from(b)),
        (Double(a), Long(b)) => java_double_cmp(a, b as f64),
        (Double(a), Str(b)) => java_double_cmp(a, java_double(b)?),
        (Str(a), Bool(b)) => a.eq_ignore_ascii_case("true").cmp(&b),
        (Str(a), Int(b)) => java_int(a)?.cmp(&b),
        (Str(a), Long(b)) => java_long(a)?.cmp(&b),
        (Str(a), Double(b)) => java_double_cmp(java_double(a)?, b),
        _ => Ordering::Less,
    })
}
