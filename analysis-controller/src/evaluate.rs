//! Success and failure conditions: the expression language Argo users write in
//! `successCondition` / `failureCondition` (expr-lang, evaluated with the `expr-lang` crate), and
//! Argo's `EvaluateResult` decision table that turns a measured value into a measurement phase.
//!
//! The environment matches Argo's: `result` is the provider's value, plus the helpers `asInt`,
//! `asFloat`, `isNaN`, `isInf`, `isNil` and `default` next to every expr builtin (`len`, `all`,
//! `any`, `max`, `in`, `matches`, ...). A condition that does not parse or does not evaluate to a
//! bool is an [`EvaluateError`] (an Error measurement with that message), never a panic.
//!
//! Values are seen as Go sees decoded JSON: every number is a float (`result == 1` holds for
//! `1.0`, `result / 2` is a float). JSON cannot hold NaN or infinities, so providers encode those
//! samples as the strings `"NaN"`, `"+Inf"` and `"-Inf"` (Prometheus' own spelling); they are
//! turned back into floats here so `isNaN(result)` and `result >= 0.95` behave as in Argo.

use std::borrow::Cow;
use std::fmt;
use std::sync::LazyLock;

use expr::{Environment, Value};
use shared_types::analysis::{AnalysisPhase, Metric};

/// Which of a metric's two conditions an error or explanation is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConditionKind {
    /// `successCondition`.
    Success,
    /// `failureCondition`.
    Failure,
}

impl fmt::Display for ConditionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConditionKind::Success => "successCondition",
            ConditionKind::Failure => "failureCondition",
        })
    }
}

/// A condition could not be evaluated: the measurement is `Error` with this text as its message.
/// The text is Argo's (`could not evaluate successCondition "<expr>": <reason>`), so it names
/// the condition and says why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("could not evaluate {kind} \"{condition}\": {reason}")]
pub struct EvaluateError {
    /// The condition that failed.
    pub kind: ConditionKind,
    /// The condition as written.
    pub condition: String,
    /// Why: a syntax error, a runtime error, a non-bool result, or that the provider returned
    /// no data.
    pub reason: String,
}

/// Reason Argo gives whenever a condition fails on a null or empty-array result: the usual
/// cause is a query that matched nothing, not a wrong condition.
const NO_DATA_REASON: &str = "metric result is nil or empty: no data returned from the metric provider";

/// Decides a measurement's phase from the metric's conditions and the measured `result`, as
/// Argo's `EvaluateResult`:
///
/// | successCondition | failureCondition | phase |
/// |---|---|---|
/// | unset | unset | Successful |
/// | set | unset | Successful if true, else Failed |
/// | unset | set | Failed if true, else Successful |
/// | set | set | Failed if failure holds (it wins), Successful if success holds, else Inconclusive |
///
/// An empty string counts as unset. Both conditions are evaluated (success first) before the
/// table is applied, so an error in either makes the measurement an Error.
pub fn evaluate_result(metric: &Metric, result: &serde_json::Value) -> Result<AnalysisPhase, EvaluateError> {
    let success = non_empty(metric.success_condition.as_deref());
    let failure = non_empty(metric.failure_condition.as_deref());
    let holds = |kind: ConditionKind, condition: Option<&str>| {
        condition
            .map(|c| eval_condition(c, result).map_err(|reason| error(kind, c, reason, result)))
            .transpose()
    };
    let success_holds = holds(ConditionKind::Success, success)?;
    let failure_holds = holds(ConditionKind::Failure, failure)?;
    // A missing condition is the negation of the other one.
    let (success, failure) = match (success_holds, failure_holds) {
        (None, None) => return Ok(AnalysisPhase::Successful),
        (Some(s), None) => (s, !s),
        (None, Some(f)) => (!f, f),
        (Some(s), Some(f)) => (s, f),
    };
    Ok(if failure {
        AnalysisPhase::Failed
    } else if success {
        AnalysisPhase::Successful
    } else {
        AnalysisPhase::Inconclusive
    })
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Builds the error for a condition; like Argo, a null or empty result replaces the reason with
/// "no data returned", which is what the user needs to hear.
fn error(kind: ConditionKind, condition: &str, reason: String, result: &serde_json::Value) -> EvaluateError {
    let no_data = match result {
        serde_json::Value::Null => true,
        serde_json::Value::Array(items) => items.is_empty(),
        _ => false,
    };
    EvaluateError {
        kind,
        condition: condition.to_string(),
        reason: if no_data {
            NO_DATA_REASON.to_string()
        } else {
            reason
        },
    }
}

/// Name under which the raw result is kept for `default` and `isNil`, which ignore their first
/// argument and look at the whole result (Argo's behaviour). Not a valid identifier, so a
/// condition cannot shadow it.
const RAW_RESULT: &str = "$argoResult";

/// The expr environment: builtins plus Argo's helpers. Built once; helpers read the raw result
/// from the evaluation context instead of capturing it.
static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.add_function("asInt", |call| as_int(&one_arg("asInt", &call.args)?));
    env.add_function("asFloat", |call| as_float(&one_arg("asFloat", &call.args)?));
    env.add_function("isNaN", |call| {
        number_arg("isNaN", &call.args).map(|f| Value::Bool(f.is_nan()))
    });
    env.add_function("isInf", |call| {
        number_arg("isInf", &call.args).map(|f| Value::Bool(f.is_infinite()))
    });
    env.add_function("isNil", |call| {
        one_arg("isNil", &call.args)?;
        Ok(Value::Bool(raw_result(call.ctx).is_nil()))
    });
    env.add_function("default", |call| {
        let [_, fallback] = call.args.as_slice() else {
            return Err(arity("default", 2, call.args.len()));
        };
        let raw = raw_result(call.ctx);
        Ok(if raw.is_nil() { fallback.clone() } else { raw })
    });
    env
});

fn raw_result(ctx: &dyn expr::ContextProvider) -> Value {
    ctx.get(RAW_RESULT).cloned().unwrap_or(Value::Nil)
}

fn arity(name: &str, expected: usize, got: usize) -> expr::Error {
    expr::Error::ExprError(format!(
        "invalid number of arguments for {name} (expected {expected}, got {got})"
    ))
}

fn one_arg(name: &str, args: &[Value]) -> expr::Result<Value> {
    match args {
        [arg] => Ok(arg.clone()),
        _ => Err(arity(name, 1, args.len())),
    }
}

/// `isNaN` / `isInf` take a float64 in Argo; ints are accepted as Go's expr converts them.
fn number_arg(name: &str, args: &[Value]) -> expr::Result<f64> {
    match one_arg(name, args)? {
        Value::Float(f) => Ok(f),
        Value::Integer(i) => Ok(i as f64),
        other => Err(expr::Error::ExprError(format!(
            "cannot use {} as argument (type float64) to call {name}",
            go_type(&other)
        ))),
    }
}

/// Argo's `asInt`: floats are truncated, numeric strings parsed (base 10), anything else is an
/// error.
fn as_int(value: &Value) -> expr::Result<Value> {
    match value {
        Value::Integer(i) => Ok(Value::Integer(*i)),
        // Truncation toward zero, as Go's int64(f); `as` saturates where Go's result is undefined.
        Value::Float(f) => Ok(Value::Integer(*f as i64)),
        Value::String(s) => s
            .parse::<i64>()
            .map(Value::Integer)
            .map_err(|_| expr::Error::ExprError(format!("strconv.ParseInt: parsing {s:?}: invalid syntax"))),
        other => Err(unsupported("asInt", other)),
    }
}

/// Argo's `asFloat`: numbers as floats, numeric strings parsed, anything else is an error.
fn as_float(value: &Value) -> expr::Result<Value> {
    match value {
        Value::Integer(i) => Ok(Value::Float(*i as f64)),
        Value::Float(f) => Ok(Value::Float(*f)),
        Value::String(s) => s.parse::<f64>().map(Value::Float).map_err(|_| {
            expr::Error::ExprError(format!("strconv.ParseFloat: parsing {s:?}: invalid syntax"))
        }),
        other => Err(unsupported("asFloat", other)),
    }
}

fn unsupported(name: &str, value: &Value) -> expr::Error {
    expr::Error::ExprError(format!("{name}() not supported on {} {value}", go_type(value)))
}

/// The Go type name Argo's messages would show for a value (`%T` of decoded JSON).
fn go_type(value: &Value) -> &'static str {
    match value {
        Value::Nil => "<nil>",
        Value::Bool(_) => "bool",
        Value::Integer(_) => "int",
        Value::Float(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Map(_) | Value::KeyedMap(_) => "map[string]interface {}",
        Value::Bytes(_) => "[]uint8",
        Value::DateTime(_) => "time.Time",
        Value::Duration(_) => "time.Duration",
        _ => "interface {}",
    }
}

/// Evaluates one condition against `result`; the error is the bare reason (the caller adds
/// which condition it was).
fn eval_condition(condition: &str, result: &serde_json::Value) -> Result<bool, String> {
    let code = expand_member_shorthand(condition);
    let program = expr::compile(&code).map_err(|e| describe_error(&e, &code))?;
    let value = to_expr(result);
    let mut ctx = expr::Context::default();
    ctx.insert("result", value.clone());
    ctx.insert(RAW_RESULT, value);
    match ENVIRONMENT.run(&program, &ctx) {
        Ok(Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("expected bool, but got {}", go_type(&other))),
        Err(e) => Err(describe_error(&e, &code)),
    }
}

/// One line saying what is wrong. expr-lang's syntax errors are multi-line pest reports that
/// list internal grammar rules; a measurement message wants the position and the text there.
fn describe_error(err: &expr::Error, code: &str) -> String {
    let text = err.to_string();
    if let expr::Error::PestError(_) = err
        && let Some(position) = text.lines().find_map(|l| l.trim().strip_prefix("--> "))
        && let Some((line, column)) = position.split_once(':')
        && let (Ok(line), Ok(column)) = (line.trim().parse::<usize>(), column.trim().parse::<usize>())
    {
        let rest: String = code
            .lines()
            .nth(line.saturating_sub(1))
            .unwrap_or_default()
            .chars()
            .skip(column.saturating_sub(1))
            .collect();
        let near = rest.trim();
        return if near.is_empty() {
            format!("syntax error at line {line}, column {column}: unexpected end of expression")
        } else {
            format!("syntax error at line {line}, column {column} near {near:?}")
        };
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Converts a provider value to an expr value the way Go's `encoding/json` decodes it (numbers
/// are float64), with the non-finite sample strings turned back into floats.
fn to_expr(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => n.as_f64().map_or(Value::Nil, Value::Float),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" => Value::Float(f64::NAN),
            "+Inf" => Value::Float(f64::INFINITY),
            "-Inf" => Value::Float(f64::NEG_INFINITY),
            _ => Value::String(s.clone()),
        },
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_expr).collect()),
        serde_json::Value::Object(map) => {
            Value::Map(map.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect())
        }
    }
}

/// The previous token, as far as deciding whether a `.` starts a member access on `#`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Previous<'a> {
    Start,
    Punct(char),
    Word(&'a str),
    Literal,
}

/// Rewrites Go expr's predicate shorthand `.field` (member of the current element, as in
/// `all(result, {asFloat(.value) >= 9900})` from Argo's docs) to `#.field`, which expr-lang
/// understands. A `.` is shorthand when it starts an operand: at the beginning, after an opening
/// bracket, a comma, an operator or a keyword operator; never inside string literals, after a
/// value (`a.b`, `f().b`, `x[0].b`, `1.5`) or as part of `?.`.
fn expand_member_shorthand(code: &str) -> Cow<'_, str> {
    if !code.contains('.') {
        return Cow::Borrowed(code);
    }
    const KEYWORDS: [&str; 8] = [
        "and",
        "or",
        "not",
        "in",
        "matches",
        "contains",
        "startsWith",
        "endsWith",
    ];
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '$';
    let mut out = String::with_capacity(code.len() + 4);
    let mut previous = Previous::Start;
    let mut spaced = false;
    let mut chars = code.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            spaced = true;
            out.push(c);
            continue;
        }
        if c == '\'' || c == '"' || c == '`' {
            out.push(c);
            let mut escaped = false;
            for (_, s) in chars.by_ref() {
                out.push(s);
                if escaped {
                    escaped = false;
                } else if s == '\\' && c != '`' {
                    escaped = true;
                } else if s == c {
                    break;
                }
            }
            previous = Previous::Literal;
            spaced = false;
            continue;
        }
        if is_word(c) {
            let mut end = i + c.len_utf8();
            out.push(c);
            while let Some(&(j, w)) = chars.peek() {
                if !is_word(w) {
                    break;
                }
                out.push(w);
                end = j + w.len_utf8();
                chars.next();
            }
            previous = Previous::Word(&code[i..end]);
            spaced = false;
            continue;
        }
        if c == '.' {
            let starts_member = chars.peek().is_some_and(|&(_, n)| n.is_alphabetic() || n == '_');
            let starts_operand = match previous {
                Previous::Start => true,
                Previous::Punct('?') => spaced,
                Previous::Punct(p) => !matches!(p, ')' | ']' | '}' | '.' | '#'),
                Previous::Word(w) => KEYWORDS.contains(&w),
                Previous::Literal => false,
            };
            if starts_member && starts_operand {
                out.push('#');
            }
        }
        out.push(c);
        previous = Previous::Punct(c);
        spaced = false;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metric(success: Option<&str>, failure: Option<&str>) -> Metric {
        Metric {
            name: "m".into(),
            success_condition: success.map(String::from),
            failure_condition: failure.map(String::from),
            ..Default::default()
        }
    }

    fn holds(condition: &str, result: serde_json::Value) -> bool {
        match eval_condition(condition, &result) {
            Ok(b) => b,
            Err(e) => panic!("{condition} on {result}: {e}"),
        }
    }

    fn fails(condition: &str, result: serde_json::Value) -> String {
        match eval_condition(condition, &result) {
            Ok(b) => panic!("{condition} on {result} evaluated to {b}"),
            Err(e) => e,
        }
    }

    #[test]
    fn decision_table() {
        use AnalysisPhase::*;
        let r = json!(0.5);
        let cases = [
            (None, None, Successful),
            (Some(""), Some(""), Successful),
            (Some("result > 0.1"), None, Successful),
            (Some("result > 0.9"), None, Failed),
            (None, Some("result > 0.9"), Successful),
            (None, Some("result > 0.1"), Failed),
            (Some("result > 0.1"), Some("result > 0.9"), Successful),
            (Some("result > 0.9"), Some("result > 0.1"), Failed),
            // Both hold: the failure condition wins.
            (Some("result > 0.1"), Some("result > 0.2"), Failed),
            // Neither holds.
            (Some("result > 0.9"), Some("result < 0.1"), Inconclusive),
        ];
        for (success, failure, expected) in cases {
            assert_eq!(
                evaluate_result(&metric(success, failure), &r),
                Ok(expected),
                "success {success:?} failure {failure:?}"
            );
        }
    }

    #[test]
    fn forms_from_argo_docs() {
        assert!(holds("result >= 0.95", json!(0.97)));
        assert!(!holds("result >= 0.95", json!(0.62)));
        assert!(holds("result[0] >= 0.95", json!([0.99])));
        assert!(holds("result[0] < 100", json!([5.0])));
        assert!(holds("result[0] <= 0.01", json!([0.0])));
        assert!(holds("result == true", json!(true)));
        assert!(holds("result == 'It worked!'", json!("It worked!")));
        assert!(holds("result.major == '1'", json!({"major": "1", "minor": "30"})));
        assert!(holds(
            "result.ok && result.successPercent >= 0.90",
            json!({"ok": true, "successPercent": 0.93})
        ));
        assert!(holds("result.successRate > 0.9", json!({"successRate": 0.95})));
        assert!(holds(
            "len(result) > 0 && all(result, {# > 0.9})",
            json!([0.95, 0.99])
        ));
        assert!(!holds(
            "len(result) > 0 && all(result, {# > 0.9})",
            json!([0.95, 0.5])
        ));
        assert!(!holds("len(result) > 0 && all(result, {# > 0.9})", json!([])));
        assert!(holds("len(result) == 0 || result[0] >= 0.95", json!([])));
        assert!(holds("max(result) < 0.05", json!([0.01, 0.04])));
        assert!(holds("all(result, # < 1000)", json!([999.0, 1.0])));
        assert!(holds(
            "len(result[0].Values) >= 5 and all(result[0].Values, {# <= 0.01})",
            json!([{"Values": [0.0, 0.01, 0.0, 0.005, 0.0]}])
        ));
        assert!(holds(
            "all(result, {asFloat(.value) >= 9900})",
            json!([{"value": "9950"}])
        ));
        assert!(!holds(
            "all(result, {asFloat(.value) >= 9900})",
            json!([{"value": "10"}])
        ));
        assert!(holds("result[0] >= 10", json!([12.0])));
    }

    #[test]
    fn operators() {
        assert!(holds("result == 'ok' or result == 'fine'", json!("fine")));
        assert!(holds("not (result < 1)", json!(3)));
        assert!(holds("!(result < 1) and result < 5", json!(3)));
        assert!(holds("result in ['a', 'b']", json!("b")));
        assert!(holds("'a' in result", json!(["a", "c"])));
        assert!(holds("'x' not in result", json!(["a"])));
        assert!(holds("result > 'abc'", json!("abd")));
        assert!(holds(
            "result * 2 + 1 > 10 && result / 2 == 2.5 && result - 1 == 4",
            json!(5)
        ));
        assert!(holds("result matches '^v[0-9]+'", json!("v12")));
        assert!(holds("result contains 'orl'", json!("world")));
        assert!(holds("result.missing == nil", json!({})));
        assert!(holds("len(filter(result, {# > 1})) == 2", json!([1, 2, 3])));
        assert!(holds("any(result, {.ok})", json!([{"ok": false}, {"ok": true}])));
    }

    #[test]
    fn numbers_are_go_floats() {
        assert!(holds("result == 1", json!(1)));
        assert!(holds("result == 1.0", json!(1)));
        assert!(holds("result / 2 == 0.5", json!(1)));
    }

    #[test]
    fn argo_helpers() {
        // isNaN / isInf, with non-finite samples spelled as Prometheus does.
        assert!(holds("isNaN(result)", json!("NaN")));
        assert!(!holds("isNaN(result)", json!(0.5)));
        assert!(holds("isNaN(result) || result >= 0.95", json!("NaN")));
        assert!(holds("isNaN(result[0])", json!(["NaN"])));
        assert!(holds("isInf(result)", json!("+Inf")));
        assert!(holds("isInf(result)", json!("-Inf")));
        assert!(!holds("isInf(result)", json!(1e300)));
        assert!(!holds("isNaN(1)", json!(null)));
        // default / isNil ignore their first argument and look at the whole result.
        assert!(holds("default(result, 0) < 5", json!(null)));
        assert!(holds("default(result, 0) == 7", json!(7)));
        assert!(holds("default(result.x, 3) == result", json!({"x": 1})));
        assert!(holds("isNil(result)", json!(null)));
        assert!(!holds("isNil(result)", json!([])));
        // asInt / asFloat.
        assert!(holds("asInt(result) == 3", json!(3.9)));
        assert!(holds("asInt(result) == -3", json!(-3.9)));
        assert!(holds("asInt(result) == 42", json!("42")));
        assert!(holds("asFloat(result) == 0.25", json!("0.25")));
        assert!(holds("asFloat(result) == 2", json!(2)));
        assert!(holds("isNaN(asFloat(result))", json!("nan")));
    }

    #[test]
    fn helper_errors() {
        assert_eq!(
            fails("asInt(result) > 1", json!("1.5")),
            r#"strconv.ParseInt: parsing "1.5": invalid syntax"#
        );
        assert_eq!(
            fails("asFloat(result) > 1", json!("abc")),
            r#"strconv.ParseFloat: parsing "abc": invalid syntax"#
        );
        assert_eq!(
            fails("asInt(result) > 1", json!(true)),
            "asInt() not supported on bool true"
        );
        assert_eq!(
            fails("isNaN(result)", json!("x")),
            "cannot use string as argument (type float64) to call isNaN"
        );
        assert_eq!(
            fails("default(result)", json!(1)),
            "invalid number of arguments for default (expected 2, got 1)"
        );
        assert_eq!(
            fails("isNil()", json!(1)),
            "invalid number of arguments for isNil (expected 1, got 0)"
        );
    }

    #[test]
    fn errors_name_the_condition_and_reason() {
        let err = evaluate_result(&metric(Some("result >= "), None), &json!(1)).unwrap_err();
        assert_eq!(err.kind, ConditionKind::Success);
        assert_eq!(
            err.to_string(),
            r#"could not evaluate successCondition "result >= ": syntax error at line 1, column 11: unexpected end of expression"#
        );
        let err = evaluate_result(&metric(None, Some("result >> 2")), &json!(1)).unwrap_err();
        assert_eq!(err.kind, ConditionKind::Failure);
        assert!(
            err.to_string().starts_with(
                r#"could not evaluate failureCondition "result >> 2": syntax error at line 1, column"#
            ),
            "{err}"
        );
        let err = evaluate_result(&metric(Some("result"), None), &json!(1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"could not evaluate successCondition "result": expected bool, but got float64"#
        );
        let err = evaluate_result(&metric(Some("result.x"), None), &json!({"x": "y"})).unwrap_err();
        assert_eq!(err.reason, "expected bool, but got string");
        let err = evaluate_result(&metric(Some("foo(result)"), None), &json!(1)).unwrap_err();
        assert_eq!(err.reason, "Unknown function: foo");
        let err = evaluate_result(&metric(Some("nope > 1"), None), &json!(1)).unwrap_err();
        assert_eq!(err.reason, "unknown variable: nope");
        // The success condition is evaluated first and its error wins.
        let err = evaluate_result(&metric(Some("bad("), Some("also bad(")), &json!(1)).unwrap_err();
        assert_eq!(err.kind, ConditionKind::Success);
    }

    #[test]
    fn empty_results_say_no_data() {
        for result in [json!(null), json!([])] {
            let err = evaluate_result(&metric(Some("result[0] >= 0.95"), None), &result).unwrap_err();
            assert_eq!(
                err.to_string(),
                r#"could not evaluate successCondition "result[0] >= 0.95": metric result is nil or empty: no data returned from the metric provider"#
            );
        }
        // Guarded conditions still work on empty results.
        assert_eq!(
            evaluate_result(
                &metric(Some("len(result) == 0 || result[0] >= 0.95"), None),
                &json!([])
            ),
            Ok(AnalysisPhase::Successful)
        );
        assert_eq!(
            evaluate_result(&metric(Some("default(result, 0) < 0.05"), None), &json!(null)),
            Ok(AnalysisPhase::Successful)
        );
    }

    #[test]
    fn member_shorthand() {
        assert_eq!(expand_member_shorthand("{.value > 1}"), "{#.value > 1}");
        assert_eq!(expand_member_shorthand(".a and .b"), "#.a and #.b");
        assert_eq!(expand_member_shorthand("f(.a, .b)"), "f(#.a, #.b)");
        assert_eq!(expand_member_shorthand("x ? .a : .b"), "x ? #.a : #.b");
        // Untouched: member access on values, numbers, `?.`, string contents.
        assert_eq!(expand_member_shorthand("result.a.b"), "result.a.b");
        assert_eq!(expand_member_shorthand("f().a + x[0].b"), "f().a + x[0].b");
        assert_eq!(expand_member_shorthand("1.5 + .5"), "1.5 + .5");
        assert_eq!(expand_member_shorthand("result?.a"), "result?.a");
        assert_eq!(
            expand_member_shorthand("'(.a' == \"(.b\\\".c\""),
            "'(.a' == \"(.b\\\".c\""
        );
        assert_eq!(expand_member_shorthand("#.a"), "#.a");
    }
}
