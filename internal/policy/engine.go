package policy

import (
	"iter"
	"maps"
	"slices"
	"sync/atomic"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/ast"
	"github.com/cedar-policy/cedar-go/types"
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/custos/custos"
)

// The Cedar entity types of custos.
const (
	typePrincipal  types.EntityType = "Custos::Principal"
	typeAction     types.EntityType = "Custos::Action"
	typeField      types.EntityType = "Custos::Field"
	typeSubject    types.EntityType = "Custos::Subject"
	typeAlgorithm  types.EntityType = "Custos::Algorithm"
	typeGovernance types.EntityType = "Custos::Governance"
	typeFlow       types.EntityType = "Custos::Flow"
)

// fieldActions act on a Custos::Field, subjectActions on a Custos::Subject,
// algorithmActions on a Custos::Algorithm, governanceActions on the
// Custos::Governance, flowActions on a Custos::Flow.
var (
	fieldActions = []custos.Action{
		custos.ActionReadClear, custos.ActionReadToken, custos.ActionReadMasked,
		custos.ActionWrite, custos.ActionDetokenize, custos.ActionApprove, custos.ActionAggregate,
	}
	subjectActions   = []custos.Action{custos.ActionRegister, custos.ActionErase, custos.ActionReadHistory}
	algorithmActions = []custos.Action{
		custos.ActionTrain, custos.ActionRecommend, custos.ActionReplay,
		custos.ActionAlgoSubmit, custos.ActionAlgoApprove, custos.ActionAlgoRetire, custos.ActionAlgoRead,
	}
	governanceActions = []custos.Action{
		custos.ActionGovPropose, custos.ActionGovApprove, custos.ActionGovRead,
		custos.ActionSuspend, custos.ActionSuspensionRead,
	}
	flowActions = []custos.Action{custos.ActionFlowExport, custos.ActionFlowRead}
)

// Field is a field as the policies see it: where it is and what class and
// type the schema declares for it.
type Field struct {
	Collection string
	Name       string
	Class      custos.Class
	Type       custos.FieldType
}

// Context is what custos knows about a request beyond who asks and for what.
type Context struct {
	Purpose    custos.Purpose // the stated purpose; "" when none
	Reason     string         // the justification's reason code; "" when none
	Justified  bool           // a justification was given
	Approved   bool           // a distinct second principal approved
	BreakGlass bool           // emergency access was invoked
}

// Engine decides requests against a policy set. It is safe for concurrent
// use; Replace swaps the set atomically, and every call decides against one
// set from start to end. Engines are made by NewEngine.
type Engine struct {
	jurisdiction string
	snap         atomic.Pointer[snapshot]

	// Cedar values that depend on nothing but their key, built once.
	principals bounded[string, *types.Entity] // by custos.Principal.Key
	contexts   bounded[Context, types.Record]
	fields     bounded[Field, *types.Entity]
}

// snapshot is a set with what is derived from it: the policies that can
// apply to each action, and the decisions made under it.
type snapshot struct {
	set      *Set
	byAction map[custos.Action]policyList
	cache    *cache
}

// policyList is the policies that may apply to one action, in id order.
// Iterating a slice costs less than iterating a cedar.PolicyMap.
type policyList []namedPolicy

type namedPolicy struct {
	id cedar.PolicyID
	p  *cedar.Policy
}

// All implements cedar.PolicyIterator.
func (l policyList) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, np := range l {
			if !yield(np.id, np.p) {
				return
			}
		}
	}
}

// NewEngine returns an engine deciding against s for an instance serving
// jurisdiction. A nil s denies everything.
func NewEngine(s *Set, jurisdiction string) *Engine {
	e := &Engine{jurisdiction: jurisdiction}
	e.principals.max, e.contexts.max, e.fields.max = maxPrincipals, maxContexts, maxFields
	e.Replace(s)
	return e
}

// Replace makes s the engine's policy set and drops every cached decision.
// Calls under way finish against the set they started with. A nil s denies
// everything.
func (e *Engine) Replace(s *Set) {
	if s == nil {
		s = &Set{}
	}
	e.snap.Store(newSnapshot(s))
}

// Version returns the version of the engine's policy set.
func (e *Engine) Version() string { return e.snap.Load().set.Version() }

func newSnapshot(s *Set) *snapshot {
	ids := slices.Sorted(maps.Keys(s.policies))
	byAction := make(map[custos.Action]policyList)
	for _, a := range slices.Concat(fieldActions, subjectActions, algorithmActions, governanceActions, flowActions) {
		uid := types.NewEntityUID(typeAction, types.String(a))
		l := policyList{}
		for _, id := range ids {
			p := s.policies[id]
			if actionScopeMay((*xast.Policy)(p.AST()).Action, uid) {
				l = append(l, namedPolicy{id, p})
			}
		}
		byAction[a] = l
	}
	// Strip action scopes once per policy, not once per action.
	stripped := make(map[cedar.PolicyID]*cedar.Policy, len(ids))
	for _, l := range byAction {
		for i, np := range l {
			q, ok := stripped[np.id]
			if !ok {
				q = withoutActionScope(np.p)
				stripped[np.id] = q
			}
			l[i].p = q
		}
	}
	return &snapshot{set: s, byAction: byAction, cache: newCache()}
}

// withoutActionScope returns p with an action scope of "action" when its
// scope names actions: among the policies kept for an action, the scope is
// known to hold, and evaluating "action in [...]" costs more than the rest
// of most policies.
func withoutActionScope(p *cedar.Policy) *cedar.Policy {
	a := (*xast.Policy)(p.AST())
	switch a.Action.(type) {
	case xast.ScopeTypeEq, xast.ScopeTypeIn, xast.ScopeTypeInSet:
		stripped := *a
		stripped.Action = xast.ScopeTypeAll{}
		q := cedar.NewPolicyFromAST((*ast.Policy)(&stripped))
		q.SetFilename(p.Position().Filename)
		return q
	}
	return p
}

// actionScopeMay reports whether a policy with action scope sc may apply to
// action a. Actions have no parents in custos, so "action in A" holds
// exactly when the action is A. An unknown kind of scope may apply.
func actionScopeMay(sc xast.IsActionScopeNode, a types.EntityUID) bool {
	switch sc := sc.(type) {
	case xast.ScopeTypeEq:
		return sc.Entity == a
	case xast.ScopeTypeIn:
		return sc.Entity == a
	case xast.ScopeTypeInSet:
		for _, e := range sc.Entities {
			if e == a {
				return true
			}
		}
		return false
	}
	return true
}

// Forms returns, for each field, the best form the policies allow p with
// ctx: clear when read-clear is allowed, else token when read-token is, else
// masked when read-masked is, else withheld.
//
// Results are cached per policy version, principal (p.Key), complete
// context and field; Replace drops the cache. A principal whose Key might be
// shared with another (see requestKey) is decided without the cache.
func (e *Engine) Forms(p custos.Principal, ctx Context, fields []Field) []custos.Form {
	s := e.snap.Load()
	out := make([]custos.Form, len(fields))
	if len(fields) == 0 {
		return out
	}
	who, cacheable := requestKey(p, ctx)
	if cacheable && s.cache.lookup(who, "", fields, out) {
		return out
	}
	r := e.newRequest(s, p, ctx, cacheable)
	for i, f := range fields {
		if out[i] == "" {
			out[i] = r.form(f)
		}
	}
	if cacheable {
		s.cache.store(who, "", fields, out)
	}
	return out
}

// Allowed decides action a of p on field f. It is meant for the actions on
// fields other than reads (write, detokenize, approve); Forms decides reads.
// An action that does not apply to fields is denied.
func (e *Engine) Allowed(p custos.Principal, a custos.Action, f Field, ctx Context) bool {
	if !slices.Contains(fieldActions, a) {
		return false
	}
	s := e.snap.Load()
	who, cacheable := requestKey(p, ctx)
	got := []custos.Form{""}
	fields := []Field{f}
	if cacheable && s.cache.lookup(who, a, fields, got) {
		return got[0] == formAllow
	}
	allowed := e.newRequest(s, p, ctx, cacheable).allowed(a, e.field(f))
	got[0] = formDeny
	if allowed {
		got[0] = formAllow
	}
	if cacheable {
		s.cache.store(who, a, fields, got)
	}
	return allowed
}

// AllowedOnSubject decides action a (register, erase, read-history) of p on the subject
// with the given id and residency. Decisions on subjects are not cached. An
// action that does not apply to subjects is denied.
func (e *Engine) AllowedOnSubject(p custos.Principal, a custos.Action, subjectID, residency string, ctx Context) bool {
	if !slices.Contains(subjectActions, a) {
		return false
	}
	subject := types.Entity{
		UID:        types.NewEntityUID(typeSubject, types.String(subjectID)),
		Attributes: types.NewRecord(types.RecordMap{"jurisdiction": types.String(residency)}),
	}
	_, cacheable := requestKey(p, ctx)
	return e.newRequest(e.snap.Load(), p, ctx, cacheable).allowed(a, &subject)
}

// AllowedOnAlgorithm decides action a (train, recommend, replay,
// algo-submit, algo-approve, algo-retire, algo-read) of p on the algorithm
// named name, in the engine's jurisdiction. Decisions on algorithms are not
// cached. An action that does not apply to algorithms is denied.
func (e *Engine) AllowedOnAlgorithm(p custos.Principal, a custos.Action, name string, ctx Context) bool {
	if !slices.Contains(algorithmActions, a) {
		return false
	}
	algorithm := types.Entity{
		UID:        types.NewEntityUID(typeAlgorithm, types.String(name)),
		Attributes: types.NewRecord(types.RecordMap{"name": types.String(name), "jurisdiction": types.String(e.jurisdiction)}),
	}
	_, cacheable := requestKey(p, ctx)
	return e.newRequest(e.snap.Load(), p, ctx, cacheable).allowed(a, &algorithm)
}

// AllowedOnGovernance decides action a (gov-propose, gov-approve,
// gov-read, suspend, suspension-read) of p on the governance of the
// engine's jurisdiction. Decisions on governance are not cached. An action
// that does not apply to governance is denied.
func (e *Engine) AllowedOnGovernance(p custos.Principal, a custos.Action, ctx Context) bool {
	if !slices.Contains(governanceActions, a) {
		return false
	}
	g := types.Entity{
		UID:        types.NewEntityUID(typeGovernance, types.String(e.jurisdiction)),
		Attributes: types.NewRecord(types.RecordMap{"jurisdiction": types.String(e.jurisdiction)}),
	}
	_, cacheable := requestKey(p, ctx)
	return e.newRequest(e.snap.Load(), p, ctx, cacheable).allowed(a, &g)
}

// FlowResource is a declared flow as the policies see it.
type FlowResource struct {
	Name         string
	Recipient    string // the recipient org
	Jurisdiction string // the recipient's country
	Collection   string
}

// AllowedOnFlow decides action a (flow-export, flow-read) of p on the
// flow f, in the engine's jurisdiction. Decisions on flows are not cached.
// An action that does not apply to flows is denied.
func (e *Engine) AllowedOnFlow(p custos.Principal, a custos.Action, f FlowResource, ctx Context) bool {
	if !slices.Contains(flowActions, a) {
		return false
	}
	res := types.Entity{
		UID: types.NewEntityUID(typeFlow, types.String(f.Name)),
		Attributes: types.NewRecord(types.RecordMap{
			"name": types.String(f.Name), "recipient": types.String(f.Recipient),
			"recipient_jurisdiction": types.String(f.Jurisdiction), "collection": types.String(f.Collection),
			"jurisdiction": types.String(e.jurisdiction),
		}),
	}
	_, cacheable := requestKey(p, ctx)
	return e.newRequest(e.snap.Load(), p, ctx, cacheable).allowed(a, &res)
}

// formAllow and formDeny stand for the decisions of Allowed in the cache.
const (
	formAllow custos.Form = "allow"
	formDeny  custos.Form = "deny"
)

// request is one call's principal and context as Cedar values, built once
// and used for every field of the call.
type request struct {
	engine    *Engine
	snap      *snapshot
	principal *types.Entity
	context   types.Record
}

// newRequest builds the Cedar values of p and ctx, or takes them from the
// engine's caches when p's key identifies it (cacheable, see requestKey).
func (e *Engine) newRequest(s *snapshot, p custos.Principal, ctx Context, cacheable bool) *request {
	r := &request{engine: e, snap: s}
	if cacheable {
		r.principal = e.principals.get(p.Key(), func() *types.Entity { return principalEntity(p) })
		r.context = e.contexts.get(ctx, func() types.Record { return contextRecord(ctx) })
	} else {
		r.principal, r.context = principalEntity(p), contextRecord(ctx)
	}
	return r
}

func principalEntity(p custos.Principal) *types.Entity {
	roles := make([]types.Value, len(p.Roles))
	for i, r := range p.Roles {
		roles[i] = types.String(r)
	}
	return &types.Entity{
		UID: types.NewEntityUID(typePrincipal, types.String(p.ID)),
		Attributes: types.NewRecord(types.RecordMap{
			"org":    types.String(p.Org),
			"loc":    types.String(p.Loc),
			"roles":  types.NewSet(roles...),
			"vetted": types.Boolean(p.Vetted),
			"issuer": types.String(p.Issuer),
		}),
	}
}

func contextRecord(ctx Context) types.Record {
	return types.NewRecord(types.RecordMap{
		"purpose":     types.String(ctx.Purpose),
		"reason":      types.String(ctx.Reason),
		"justified":   types.Boolean(ctx.Justified),
		"approved":    types.Boolean(ctx.Approved),
		"break_glass": types.Boolean(ctx.BreakGlass),
	})
}

// field returns the Cedar entity of f in the engine's jurisdiction.
func (e *Engine) field(f Field) *types.Entity {
	return e.fields.get(f, func() *types.Entity {
		return &types.Entity{
			UID: types.NewEntityUID(typeField, types.String(f.Collection+"."+f.Name)),
			Attributes: types.NewRecord(types.RecordMap{
				"collection":   types.String(f.Collection),
				"name":         types.String(f.Name),
				"class":        types.String(f.Class),
				"type":         types.String(f.Type),
				"jurisdiction": types.String(e.jurisdiction),
			}),
		}
	})
}

// form returns the best form of f the policies allow.
func (r *request) form(f Field) custos.Form {
	res := r.engine.field(f)
	for _, a := range custos.ReadActions {
		if r.allowed(a, res) {
			return custos.FormOf(a)
		}
	}
	return custos.FormWithheld
}

// allowed decides action a on resource. Any evaluation error denies, even
// when the policy in error is a permit: a policy set that cannot be
// evaluated as written grants nothing. So does a panic of the evaluator.
func (r *request) allowed(a custos.Action, resource *types.Entity) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	policies, ok := r.snap.byAction[a]
	if !ok {
		return false
	}
	req := cedar.Request{
		Principal: r.principal.UID,
		Action:    types.NewEntityUID(typeAction, types.String(a)),
		Resource:  resource.UID,
		Context:   r.context,
	}
	d, diag := cedar.Authorize(policies, entities{r.principal, resource}, req)
	return d == cedar.Allow && len(diag.Errors) == 0
}

// entities holds the two entities of a request: custos gives entities no
// parents, so policies need no other.
type entities struct{ principal, resource *types.Entity }

func (es entities) Get(uid types.EntityUID) (types.Entity, bool) {
	switch uid {
	case es.principal.UID:
		return *es.principal, true
	case es.resource.UID:
		return *es.resource, true
	}
	return types.Entity{}, false
}
