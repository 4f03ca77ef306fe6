//! DynamoDB expression text for the core's [`TableWrite`] and [`TableQuery`]: every attribute
//! name and value goes through a placeholder (`#n0`, `:v0`), so no name can collide with a
//! reserved word and no value is ever spliced into the text.

use sqsbalancer_core::table::{Cond, PK, SK, TableQuery, Update, Value};
use std::collections::BTreeMap;

/// An expression's text and its placeholders.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Expr {
    /// UpdateExpression (writes) or KeyConditionExpression (queries).
    pub text: String,
    /// ConditionExpression, if any.
    pub condition: Option<String>,
    /// `#nK` -> attribute name.
    pub names: BTreeMap<String, String>,
    /// `:vK` -> value.
    pub values: BTreeMap<String, Value>,
}

impl Expr {
    fn name(&mut self, n: &str) -> String {
        if let Some((k, _)) = self.names.iter().find(|(_, v)| v.as_str() == n) {
            return k.clone();
        }
        let k = format!("#n{}", self.names.len());
        self.names.insert(k.clone(), n.to_owned());
        k
    }

    fn value(&mut self, v: Value) -> String {
        let k = format!(":v{}", self.values.len());
        self.values.insert(k.clone(), v);
        k
    }

    fn cond(&mut self, c: &Cond) -> String {
        match c {
            Cond::Exists(n) => format!("attribute_exists({})", self.name(n)),
            Cond::NotExists(n) => format!("attribute_not_exists({})", self.name(n)),
            Cond::Eq(n, v) => {
                let (n, v) = (self.name(n), self.value(v.clone()));
                format!("{n} = {v}")
            }
            // Spelled out so that an absent attribute counts as different, whatever the
            // service makes of comparing a missing attribute.
            Cond::Ne(n, v) => {
                let (n, v) = (self.name(n), self.value(v.clone()));
                format!("(attribute_not_exists({n}) OR {n} <> {v})")
            }
            Cond::Lt(n, v) => {
                let (n, v) = (self.name(n), self.value(v.clone()));
                format!("{n} < {v}")
            }
            Cond::Gt(n, v) => {
                let (n, v) = (self.name(n), self.value(v.clone()));
                format!("{n} > {v}")
            }
            Cond::And(parts) => self.join(parts, " AND "),
            Cond::Or(parts) => self.join(parts, " OR "),
        }
    }

    fn join(&mut self, parts: &[Cond], op: &str) -> String {
        let texts: Vec<String> = parts.iter().map(|p| self.cond(p)).collect();
        format!("({})", texts.join(op))
    }
}

/// The UpdateExpression and ConditionExpression of a write.
pub fn update(updates: &[Update], cond: Option<&Cond>) -> Expr {
    let mut e = Expr::default();
    let (mut set, mut add, mut remove) = (Vec::new(), Vec::new(), Vec::new());
    for u in updates {
        match u {
            Update::Set(n, v) => {
                let (n, v) = (e.name(n), e.value(v.clone()));
                set.push(format!("{n} = {v}"));
            }
            Update::Add(n, by) => {
                let (n, v) = (e.name(n), e.value(Value::N(by.to_string())));
                add.push(format!("{n} {v}"));
            }
            Update::Increment(n, absent) => {
                let (n, a) = (e.name(n), e.value(Value::num(*absent)));
                let one = e.value(Value::num(1));
                set.push(format!("{n} = if_not_exists({n}, {a}) + {one}"));
            }
            Update::Copy(n, from, absent) => {
                let (n, from) = (e.name(n), e.name(from));
                let a = e.value(Value::num(*absent));
                set.push(format!("{n} = if_not_exists({from}, {a})"));
            }
            Update::Remove(n) => remove.push(e.name(n)),
        }
    }
    let mut clauses = Vec::new();
    for (word, parts) in [("SET", set), ("ADD", add), ("REMOVE", remove)] {
        if !parts.is_empty() {
            clauses.push(format!("{word} {}", parts.join(", ")));
        }
    }
    e.text = clauses.join(" ");
    e.condition = cond.map(|c| e.cond(c));
    e
}

/// The KeyConditionExpression of a query.
pub fn query(q: &TableQuery) -> Expr {
    let mut e = Expr::default();
    let (pk, v) = (e.name(PK), e.value(Value::S(q.pk.clone())));
    e.text = format!("{pk} = {v}");
    if let Some(prefix) = &q.sk_prefix {
        let (sk, p) = (e.name(SK), e.value(Value::S(prefix.clone())));
        e.text += &format!(" AND begins_with({sk}, {p})");
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_group_by_clause_and_names_repeat_once() {
        let e = update(
            &[
                Update::Set("status", Value::S("dead".into())),
                Update::Add("incarnation", 1),
                Update::Set("ttl", Value::num(9)),
                Update::Remove("owner_id"),
            ],
            Some(&Cond::And(vec![
                Cond::Exists("pk"),
                Cond::Ne("status", Value::S("dead".into())),
            ])),
        );
        assert_eq!(e.text, "SET #n0 = :v0, #n2 = :v2 ADD #n1 :v1 REMOVE #n3");
        assert_eq!(
            e.condition.as_deref(),
            Some("(attribute_exists(#n4) AND (attribute_not_exists(#n0) OR #n0 <> :v3))")
        );
        assert_eq!(e.names["#n0"], "status");
        assert_eq!(e.names.len(), 5);
        assert_eq!(e.values[":v1"], Value::N("1".into()));
    }

    #[test]
    fn a_counter_with_a_start_reads_if_not_exists() {
        let e = update(&[Update::Increment("incarnation", 41)], None);
        assert_eq!(e.text, "SET #n0 = if_not_exists(#n0, :v0) + :v1");
        assert_eq!(e.values[":v0"], Value::num(41));
        assert_eq!(e.values[":v1"], Value::num(1));
    }

    #[test]
    fn a_copy_and_order_conditions_name_both_attributes_through_placeholders() {
        let e = update(
            &[Update::Copy("prior_heartbeat", "heartbeat", 0)],
            Some(&Cond::And(vec![
                Cond::Gt("incarnation", Value::num(3)),
                Cond::Lt("lapsed", Value::num(3)),
            ])),
        );
        assert_eq!(e.text, "SET #n0 = if_not_exists(#n1, :v0)");
        assert_eq!(e.names["#n1"], "heartbeat");
        assert_eq!(e.condition.as_deref(), Some("(#n2 > :v1 AND #n3 < :v2)"));
    }

    #[test]
    fn queries_are_a_partition_and_an_optional_prefix() {
        let all = query(&TableQuery {
            pk: "app#a".into(),
            sk_prefix: None,
            backward: false,
        });
        assert_eq!(all.text, "#n0 = :v0");
        let members = query(&TableQuery {
            pk: "app#a".into(),
            sk_prefix: Some("instance#".into()),
            backward: false,
        });
        assert_eq!(members.text, "#n0 = :v0 AND begins_with(#n1, :v1)");
        assert_eq!(members.names["#n1"], "sk");
    }
}
