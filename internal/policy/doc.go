// Package policy decides, field by field, what a principal may do with the
// data custos holds, by evaluating the custodian's Cedar policies
// (github.com/cedar-policy/cedar-go).
//
// # Guarantees
//
//   - Deny by default: an action no policy permits is denied, a forbid
//     overrides every permit, and an evaluation error in any policy that
//     applies to the action denies it, even when the failing policy is a
//     permit. A field no read policy permits is withheld.
//   - Every policy set is validated against the Cedar schema below (see
//     CedarSchema) when it is parsed: a misspelt attribute, action or
//     entity type, or a type error, is refused with its file, line and
//     column, never discovered at run time as a rule that silently never
//     matches. A *Set exists only once parsing and validation succeeded,
//     so an Engine can never be given a set that failed them.
//   - An Engine decides every call against one policy set: Replace swaps
//     sets atomically and drops the cached decisions with the old set.
//
// The package trusts its callers for the principal (authenticated before it
// gets here), the field's class and type (from the schema) and the context
// (stated by custos, not by the caller: approvals and break-glass are
// checked before they are set).
//
// # The Cedar model
//
// All names live in the Cedar namespace Custos.
//
// Principal: Custos::Principal::"<id>", with attributes
//
//	org     String       custodian, operator, monitor, or an org the config names
//	loc     String       ISO 3166-1 alpha-2 country where the principal is located
//	roles   Set<String>  such as "service"
//	vetted  Bool         personnel screening passed
//	issuer  String       the issuer of the principal's credential
//
// Actions: Custos::Action::"read-clear", "read-token", "read-masked",
// "write", "detokenize" and "approve" act on fields; "register", "erase"
// and "read-history" act on subjects; "algo-submit", "algo-approve",
// "algo-retire" and "algo-read" act on algorithm bundles. Actions have no
// groups: "action in A" means "action == A".
//
// Field: Custos::Field::"<collection>.<name>", with attributes
//
//	collection    String  e.g. "users"
//	name          String  e.g. "email"
//	class         String  protected, public, business-metric, interop or creator
//	type          String  the field type of the schema: id, string, email, ...
//	jurisdiction  String  the jurisdiction the custos instance serves
//
// Subject: Custos::Subject::"<id>", with attribute
//
//	jurisdiction  String  the subject's residency
//
// Algorithm: Custos::Algorithm::"<name>", the bundles of one name in the
// registry of algorithms, with attributes
//
//	name          String  e.g. "covisit"
//	jurisdiction  String  the jurisdiction the custos instance serves
//
// Listing the whole registry is "algo-read" on the name "*". The policy
// decides who may act on the registry; whether a bundle may run is decided
// by signatures (the operator's and N reviewers'), not by policy.
//
// Context, always complete, so that no policy meets a missing attribute:
//
//	purpose      String  the purpose the caller stated; "" when none
//	reason       String  the reason code of the justification; "" when none
//	justified    Bool    a justification was given
//	approved     Bool    a distinct second principal approved
//	break_glass  Bool    emergency access was invoked
//
// Entities have no parents, and a request holds only its principal and its
// resource: policies compare attributes, they do not walk hierarchies.
//
// # Reads
//
// A read releases each field in the best form a policy permits: in clear
// if "read-clear" is allowed, else as a token if "read-token" is, else
// masked if "read-masked" is, else not at all (Engine.Forms).
//
// # Caching
//
// Engine.Forms and Engine.Allowed cache their decisions under the policy set
// they were made with, keyed by the principal with all its attributes
// (custos.Principal.Key), the complete Context, the action and the field
// with its class and type: two calls that share a key get the same decision
// from Cedar, so the cache never changes an answer. The cache is sharded and
// bounded to about 100,000 decisions; a full shard is emptied. Decisions on
// subjects (register, erase) and on algorithms are rare and not cached. A
// principal whose Key could be shared with another principal (a role
// holding a comma, an empty role, a NUL byte in an attribute) is decided
// afresh on every call.
//
// The Cedar entity of each principal, context and field is built once per
// call at most and kept in bounded maps beside the decisions; policies are
// indexed by the actions their scope names, so a request evaluates only the
// policies that can apply to its action.
//
// # Policy tests
//
// A policy test table (ParseTests, RunTests) is a YAML list of cases, each
// a principal, an action on a field or subject, a context and the expected
// outcome, so that a custodian can check a change to the policies before it
// takes effect (custos policy test).
package policy
