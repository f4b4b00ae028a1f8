//! The SQL92 selector grammar of RocketMQ's `SelectorParser.jj` (5.x, with
//! `CONTAINS`, `STARTSWITH`, `ENDSWITH`), parsed with winnow into a syntax tree
//! that keeps each node's position; [`super::ast`] then applies the checks
//! RocketMQ makes while building its expression objects.
//!
//! Precedence, loosest first (as the JavaCC grammar): `OR`; `AND`; `=`, `<>`,
//! `IS [NOT] NULL`; `>`, `>=`, `<`, `<=`, `[NOT] BETWEEN`, `[NOT] IN`,
//! `[NOT] CONTAINS|STARTSWITH|ENDSWITH`; unary `+`, `-`, `NOT`; literals,
//! properties and parentheses. As in RocketMQ, `NOT` is a unary operator
//! binding tighter than comparisons (`NOT a = 1` is `(NOT a) = 1`).

use winnow::ascii::{digit0, digit1, Caseless};
use winnow::combinator::{alt, cut_err, delimited, eof, not, opt, preceded, repeat, separated};
use winnow::error::{ContextError, ErrMode, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::token::{literal, one_of, take_till, take_until, take_while};

/// A literal as the tokenizer read it (its text is checked when the tree is
/// built: a decimal too big for a Java `long`, a float out of range).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Decimal(String),
    Float(String),
    True,
    False,
    Null,
}

/// Comparison operators of the `comparisonExpression` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RelOp {
    Gt,
    Ge,
    Lt,
    Le,
}

/// String operators of RocketMQ 5.x.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextKw {
    Contains,
    StartsWith,
    EndsWith,
}

/// A syntax node; `at` is the number of input bytes left when the node began
/// (turned into a position once the whole input is known).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Syn {
    Lit(Lit, usize),
    Prop(String, usize),
    Neg(Box<Syn>, usize),
    Not(Box<Syn>, usize),
    Or(Box<Syn>, Box<Syn>, usize),
    And(Box<Syn>, Box<Syn>, usize),
    Eq(Box<Syn>, Box<Syn>, usize),
    Ne(Box<Syn>, Box<Syn>, usize),
    IsNull(Box<Syn>, bool, usize),
    Rel(RelOp, Box<Syn>, Box<Syn>, usize),
    Between(Box<Syn>, Box<Syn>, Box<Syn>, bool, usize),
    In(Box<Syn>, Vec<String>, bool, usize),
    Text(TextKw, Box<Syn>, String, bool, usize),
}

type PResult<O> = ModalResult<O>;

const RESERVED: [&str; 12] = [
    "NOT",
    "AND",
    "OR",
    "BETWEEN",
    "IN",
    "TRUE",
    "FALSE",
    "NULL",
    "IS",
    "CONTAINS",
    "STARTSWITH",
    "ENDSWITH",
];

fn id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$'
}

/// `--` comments run to a line end (required, as the JavaCC token), `/* */`
/// comments to their close.
fn comment(i: &mut &str) -> PResult<()> {
    alt((
        (
            "--",
            take_till(0.., ['\n', '\r']),
            cut_err(one_of(['\n', '\r'])).context(StrContext::Expected(
                StrContextValue::Description("end of line after -- comment"),
            )),
        )
            .void(),
        (
            "/*",
            cut_err(take_until(0.., "*/"))
                .context(StrContext::Expected(StrContextValue::Description("*/"))),
            "*/",
        )
            .void(),
    ))
    .parse_next(i)
}

/// Blanks and comments.
fn ws(i: &mut &str) -> PResult<()> {
    repeat(
        0..,
        alt((
            take_while(1.., [' ', '\t', '\n', '\r', '\x0c']).void(),
            comment,
        )),
    )
    .parse_next(i)
}

/// A reserved word, any case, not followed by an identifier character.
fn kw<'i>(word: &'static str) -> impl Parser<&'i str, (), ErrMode<ContextError>> {
    preceded(ws, (Caseless(word), not(one_of(id_char))).void())
}

/// An operator symbol.
fn sym<'i>(s: &'static str) -> impl Parser<&'i str, (), ErrMode<ContextError>> {
    preceded(ws, literal(s).void())
}

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

/// Parse a whole selector.
///
/// # Errors
/// The byte offset where parsing failed and what was expected there.
pub(crate) fn parse(src: &str) -> Result<Syn, (usize, String)> {
    let mut p = delimited(
        ws,
        or_expr,
        (ws, eof.context(expected("end of expression"))),
    );
    p.parse(src)
        .map_err(|e| (e.offset(), e.inner().to_string()))
}

fn rest(i: &&str) -> usize {
    i.len()
}

fn or_expr(i: &mut &str) -> PResult<Syn> {
    let mut left = and_expr(i)?;
    loop {
        let at = rest(i);
        if opt(kw("OR")).parse_next(i)?.is_none() {
            return Ok(left);
        }
        let right = cut_err(and_expr).parse_next(i)?;
        left = Syn::Or(Box::new(left), Box::new(right), at);
    }
}

fn and_expr(i: &mut &str) -> PResult<Syn> {
    let mut left = eq_expr(i)?;
    loop {
        let at = rest(i);
        if opt(kw("AND")).parse_next(i)?.is_none() {
            return Ok(left);
        }
        let right = cut_err(eq_expr).parse_next(i)?;
        left = Syn::And(Box::new(left), Box::new(right), at);
    }
}

#[derive(Clone, Copy)]
enum EqOp {
    Eq,
    Ne,
    IsNull,
    IsNotNull,
}

fn eq_expr(i: &mut &str) -> PResult<Syn> {
    let mut left = cmp_expr(i)?;
    loop {
        let at = rest(i);
        let op = opt(alt((
            sym("=").value(EqOp::Eq),
            sym("<>").value(EqOp::Ne),
            (kw("IS"), kw("NULL")).value(EqOp::IsNull),
            (
                kw("IS"),
                kw("NOT"),
                cut_err(kw("NULL")).context(expected("NULL")),
            )
                .value(EqOp::IsNotNull),
        )))
        .parse_next(i)?;
        let Some(op) = op else { return Ok(left) };
        left = match op {
            EqOp::Eq => Syn::Eq(
                Box::new(left),
                Box::new(cut_err(cmp_expr).parse_next(i)?),
                at,
            ),
            EqOp::Ne => Syn::Ne(
                Box::new(left),
                Box::new(cut_err(cmp_expr).parse_next(i)?),
                at,
            ),
            EqOp::IsNull => Syn::IsNull(Box::new(left), false, at),
            EqOp::IsNotNull => Syn::IsNull(Box::new(left), true, at),
        };
    }
}

#[derive(Clone, Copy)]
enum CmpOp {
    Rel(RelOp),
    Text(TextKw, bool),
    Between(bool),
    In(bool),
}

fn text_kw(i: &mut &str) -> PResult<TextKw> {
    alt((
        kw("CONTAINS").value(TextKw::Contains),
        kw("STARTSWITH").value(TextKw::StartsWith),
        kw("ENDSWITH").value(TextKw::EndsWith),
    ))
    .parse_next(i)
}

fn cmp_op(i: &mut &str) -> PResult<CmpOp> {
    alt((
        sym(">=").value(CmpOp::Rel(RelOp::Ge)),
        sym(">").value(CmpOp::Rel(RelOp::Gt)),
        sym("<=").value(CmpOp::Rel(RelOp::Le)),
        // `<>` belongs to the equality rule.
        (sym("<"), not(one_of(['>']))).value(CmpOp::Rel(RelOp::Lt)),
        text_kw.map(|k| CmpOp::Text(k, false)),
        kw("BETWEEN").value(CmpOp::Between(false)),
        kw("IN").value(CmpOp::In(false)),
        preceded(
            kw("NOT"),
            alt((
                text_kw.map(|k| CmpOp::Text(k, true)),
                kw("BETWEEN").value(CmpOp::Between(true)),
                kw("IN").value(CmpOp::In(true)),
            )),
        ),
    ))
    .parse_next(i)
}

fn cmp_expr(i: &mut &str) -> PResult<Syn> {
    let mut left = unary(i)?;
    loop {
        let at = rest(i);
        let Some(op) = opt(cmp_op).parse_next(i)? else {
            return Ok(left);
        };
        let l = Box::new(left);
        left = match op {
            CmpOp::Rel(r) => Syn::Rel(r, l, Box::new(cut_err(unary).parse_next(i)?), at),
            CmpOp::Text(k, neg) => Syn::Text(k, l, cut_err(string_lit).parse_next(i)?, neg, at),
            CmpOp::Between(neg) => {
                let lo = cut_err(unary).parse_next(i)?;
                cut_err(kw("AND")).context(expected("AND")).parse_next(i)?;
                let hi = cut_err(unary).parse_next(i)?;
                Syn::Between(l, Box::new(lo), Box::new(hi), neg, at)
            }
            CmpOp::In(neg) => {
                let list: Vec<String> = cut_err(delimited(
                    sym("(").context(expected("(")),
                    separated(1.., string_lit, sym(",")),
                    sym(")").context(expected(")")),
                ))
                .parse_next(i)?;
                Syn::In(l, list, neg, at)
            }
        };
    }
}

fn unary(i: &mut &str) -> PResult<Syn> {
    ws(i)?;
    let at = rest(i);
    if opt(sym("+")).parse_next(i)?.is_some() {
        return cut_err(unary).parse_next(i);
    }
    if opt(sym("-")).parse_next(i)?.is_some() {
        return Ok(Syn::Neg(Box::new(cut_err(unary).parse_next(i)?), at));
    }
    if opt(kw("NOT")).parse_next(i)?.is_some() {
        return Ok(Syn::Not(Box::new(cut_err(unary).parse_next(i)?), at));
    }
    primary(i)
}

fn primary(i: &mut &str) -> PResult<Syn> {
    ws(i)?;
    let at = rest(i);
    alt((
        string_lit.map(move |s| Syn::Lit(Lit::Str(s), at)),
        float_lit.map(move |s| Syn::Lit(Lit::Float(s), at)),
        decimal_lit.map(move |s| Syn::Lit(Lit::Decimal(s), at)),
        kw("TRUE").map(move |()| Syn::Lit(Lit::True, at)),
        kw("FALSE").map(move |()| Syn::Lit(Lit::False, at)),
        kw("NULL").map(move |()| Syn::Lit(Lit::Null, at)),
        identifier.map(move |s| Syn::Prop(s, at)),
        delimited(
            sym("("),
            cut_err(or_expr),
            cut_err(sym(")")).context(expected(")")),
        ),
    ))
    .context(expected("a literal, a property or ("))
    .parse_next(i)
}

/// `'...'` with `''` for a quote.
fn string_lit(i: &mut &str) -> PResult<String> {
    preceded(
        ws,
        delimited(
            "'",
            repeat(0.., alt(("''".value('\''), one_of(|c| c != '\'')))),
            cut_err("'").context(expected("closing quote")),
        ),
    )
    .context(expected("a string literal"))
    .parse_next(i)
}

/// `0 | [1-9][0-9]* [lL]?`, not followed by an identifier character.
fn decimal_lit(i: &mut &str) -> PResult<String> {
    (
        alt(("0", (one_of('1'..='9'), digit0).take())),
        opt(one_of(['l', 'L'])),
        not(one_of(id_char)),
    )
        .take()
        .map(str::to_string)
        .parse_next(i)
}

fn exponent(i: &mut &str) -> PResult<()> {
    (one_of(['e', 'E']), opt(one_of(['+', '-'])), digit1)
        .void()
        .parse_next(i)
}

/// `5.5`, `5.`, `5.5E10`, `.5`, `.5E10`, `5E10`.
fn float_lit(i: &mut &str) -> PResult<String> {
    alt((
        (digit1, ".", digit0, opt(exponent)).void(),
        (".", digit1, opt(exponent)).void(),
        (digit1, exponent).void(),
    ))
    .take()
    .map(str::to_string)
    .parse_next(i)
}

/// `[a-z_$][a-z0-9_$]*` (any case), not a reserved word.
fn identifier(i: &mut &str) -> PResult<String> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '$'),
        take_while(0.., id_char),
    )
        .take()
        .verify(|s: &str| !RESERVED.iter().any(|r| r.eq_ignore_ascii_case(s)))
        .map(str::to_string)
        .parse_next(i)
}

/// Line and column (1-based, in characters) of a byte offset of `src`.
pub(crate) fn line_column(src: &str, offset: usize) -> (usize, usize) {
    let before = &src[..offset.min(src.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The token at a byte offset, for an error message (`<EOF>` at the end).
pub(crate) fn token_at(src: &str, offset: usize) -> String {
    let s = src.get(offset.min(src.len())..).unwrap_or("");
    let s = s.trim_start();
    if s.is_empty() {
        return "<EOF>".to_string();
    }
    let word: String = s.chars().take_while(|c| id_char(*c)).collect();
    if word.is_empty() {
        s.chars().next().map(String::from).unwrap_or_default()
    } else {
        word
    }
}
