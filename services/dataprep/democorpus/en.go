package democorpus

import (
	"fmt"
	"strings"
)

var (
	enFirst     = []string{"James", "Mary", "Robert", "Linda", "Michael", "Sarah", "David", "Emily", "Daniel", "Laura", "Thomas", "Anna", "Wei", "Mei"}
	enLast      = []string{"Smith", "Johnson", "Brown", "Taylor", "Wilson", "Clark", "Lewis", "Walker", "Hall", "Young", "Chen", "Wang", "Lee", "Morgan"}
	enCoWord    = []string{"Acme", "Pioneer", "Summit", "Harbor", "Evergreen", "Northstar", "Bluewater", "Crescent", "Granite", "Silverline"}
	enCoKind    = []string{"Trading", "Logistics", "Technologies", "Holdings", "Industries", "Properties", "Capital", "Supply"}
	enCoSuffix  = []string{"Co., Ltd.", "Inc.", "LLC", "Limited", "Pte. Ltd."}
	enPlaces    = []struct{ city, law, court string }{{"Singapore", "the Republic of Singapore", "the State Courts of Singapore"}, {"Hong Kong", "the Hong Kong Special Administrative Region", "the District Court of Hong Kong"}, {"New York", "the State of New York", "the Supreme Court of the State of New York"}, {"London", "England and Wales", "the County Court at Central London"}, {"Shanghai", "the People's Republic of China", "the Shanghai Pudong New Area People's Court"}}
	enStreets   = []string{"Market Street", "Harbour Road", "Queen's Road", "Orchard Road", "Fifth Avenue", "King Street", "Century Avenue"}
	enMonths    = []string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
	enGoods     = []string{"steel coils", "laptop computers", "medical devices", "textile fabrics", "electronic components", "office furniture"}
	enPositions = []string{"Sales Manager", "Software Engineer", "Financial Analyst", "Office Administrator", "Product Manager"}
)

type enParty struct{ name, addr string }

func (g *gen) enPerson() string { return g.pick(enFirst) + " " + g.pick(enLast) }

func (g *gen) enParty(company bool, city string) enParty {
	addr := fmt.Sprintf("%d %s, %s", g.between(1, 999), g.pick(enStreets), city)
	if company {
		return enParty{g.pick(enCoWord) + " " + g.pick(enCoKind) + " " + g.pick(enCoSuffix), addr}
	}
	return enParty{g.enPerson(), addr}
}

func (g *gen) enDate(year int) string {
	return fmt.Sprintf("%s %d, %d", g.pick(enMonths), g.between(1, 28), year)
}

func usd(n int) string { return "USD " + figures(n) }

var enKinds = map[string]struct {
	title, roleA, roleB, whereasA, whereasB string
	companyA, companyB                      float64
	articles                                []func(g *gen, amount int, months int, year int) (string, string)
}{
	KindSale: {"SALE AND PURCHASE AGREEMENT", "Seller", "Buyer", "the Seller is engaged in the manufacture and sale of %s", "the Buyer wishes to purchase such goods from the Seller on the terms set out below", 1, 0.8,
		[]func(*gen, int, int, int) (string, string){
			func(g *gen, a, m, y int) (string, string) {
				return "Goods", fmt.Sprintf("The Seller shall sell and the Buyer shall purchase %d units of %s at a total price of %s (the \"Purchase Price\").", g.between(10, 900), g.pick(enGoods), usd(a))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Delivery", fmt.Sprintf("The Seller shall deliver the Goods to the Buyer's premises no later than %s. Risk of loss shall pass to the Buyer upon delivery.", g.enDate(y))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Payment", fmt.Sprintf("The Buyer shall pay %d%% of the Purchase Price within %d days after signing and the balance within %d days after acceptance of the Goods, by wire transfer.", g.pick2(20, 30, 50), g.pick2(5, 7, 10), g.pick2(15, 30, 60))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Warranty", fmt.Sprintf("The Seller warrants that the Goods shall be free from defects in materials and workmanship for a period of %d months from the date of delivery.", g.pick2(6, 12, 24))
			},
		}},
	KindLease: {"LEASE AGREEMENT", "Landlord", "Tenant", "the Landlord is the registered owner of the premises located at %s", "the Tenant wishes to lease the premises for %s use", 0.5, 0.5,
		[]func(*gen, int, int, int) (string, string){
			func(g *gen, a, m, y int) (string, string) {
				return "Term", fmt.Sprintf("The term of this lease shall be %d months, commencing on %s.", m, g.enDate(y))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Rent", fmt.Sprintf("The Tenant shall pay a monthly rent of %s in advance on or before the %s day of each month.", usd(a), g.pick([]string{"first", "fifth", "tenth"}))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Security Deposit", fmt.Sprintf("Upon signing this Agreement, the Tenant shall pay a security deposit of %s, which shall be refunded without interest at the end of the term.", usd(a*g.pick2(1, 2, 3)))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Maintenance", "The Landlord shall be responsible for structural repairs. The Tenant shall keep the premises in good and clean condition, fair wear and tear excepted."
			},
		}},
	KindEmployment: {"EMPLOYMENT CONTRACT", "Employer", "Employee", "the Employer is engaged in the business of %s", "the Employer wishes to employ the Employee and the Employee wishes to accept such employment", 1, 0,
		[]func(*gen, int, int, int) (string, string){
			func(g *gen, a, m, y int) (string, string) {
				return "Position and Duties", fmt.Sprintf("The Employee shall serve as %s and shall perform such duties as the Employer may reasonably assign.", g.pick(enPositions))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Term and Probation", fmt.Sprintf("This Contract shall commence on %s for a term of %d months, the first %d months of which shall be a probationary period.", g.enDate(y), m, g.pick2(1, 3, 6))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Remuneration", fmt.Sprintf("The Employer shall pay the Employee a monthly salary of %s, payable on the last working day of each month.", usd(a))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Confidentiality", "The Employee shall not, during or after the employment, disclose any confidential information of the Employer to any third party."
			},
		}},
	KindLoan: {"LOAN AGREEMENT", "Lender", "Borrower", "the Lender is willing to make a loan available for %s", "the Borrower wishes to borrow such amount on the terms of this Agreement", 0.6, 0.6,
		[]func(*gen, int, int, int) (string, string){
			func(g *gen, a, m, y int) (string, string) {
				return "Loan Amount", fmt.Sprintf("The Lender agrees to lend to the Borrower the principal amount of %s (the \"Loan\").", usd(a))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Interest", fmt.Sprintf("The Loan shall bear interest at the rate of %s per annum, calculated on the basis of a 365-day year.", g.pick([]string{"4.5%", "5%", "6.25%", "8%"}))
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Repayment", fmt.Sprintf("The Borrower shall repay the Loan together with accrued interest within %d months from the date of drawdown.", m)
			},
			func(g *gen, a, m, y int) (string, string) {
				return "Events of Default", fmt.Sprintf("If the Borrower fails to pay any amount when due and such failure continues for %d days, the Lender may declare the Loan immediately due and payable.", g.pick2(10, 15, 30))
			},
		}},
}

var enTail = []func(g *gen, law string) (string, string){
	func(g *gen, law string) (string, string) {
		return "Breach", "If either party breaches this Agreement, it shall indemnify the other party against all losses, costs and expenses arising from such breach."
	},
	func(g *gen, law string) (string, string) {
		return "Force Majeure", "Neither party shall be liable for any failure to perform caused by events beyond its reasonable control, provided that it promptly notifies the other party."
	},
	func(g *gen, law string) (string, string) {
		return "Governing Law", fmt.Sprintf("This Agreement shall be governed by and construed in accordance with the laws of %s.", law)
	},
	func(g *gen, law string) (string, string) {
		return "Dispute Resolution", "Any dispute arising out of or in connection with this Agreement shall first be resolved through friendly negotiation, failing which either party may submit it to the competent court."
	},
}

func (g *gen) enDocument(kind string) (string, string) {
	if kind == KindJudgment {
		return g.enJudgment()
	}
	k := enKinds[kind]
	place := enPlaces[g.r.IntN(len(enPlaces))]
	year := g.between(2015, 2024)
	months := zhDurations[g.r.IntN(len(zhDurations))]
	a := g.enParty(g.chance(k.companyA), place.city)
	b := g.enParty(g.chance(k.companyB), place.city)
	amount := map[string]int{KindSale: g.between(10, 5000) * 100, KindLease: g.between(5, 200) * 100, KindEmployment: g.between(20, 200) * 100, KindLoan: g.between(10, 5000) * 100}[kind]
	var s strings.Builder
	fmt.Fprintf(&s, "%s\n\nThis Agreement is made on %s by and between:\n\n", k.title, g.enDate(year))
	fmt.Fprintf(&s, "%s: %s, with an address at %s (\"Party A\"); and\n", k.roleA, a.name, a.addr)
	fmt.Fprintf(&s, "%s: %s, with an address at %s (\"Party B\").\n\n", k.roleB, b.name, b.addr)
	slot := map[string]string{KindSale: g.pick(enGoods), KindLease: b.addr, KindEmployment: g.pick([]string{"software development", "international trade", "logistics services"}), KindLoan: "general working capital purposes"}[kind]
	if kind == KindLease {
		slot = a.addr
	}
	fmt.Fprintf(&s, "WHEREAS, %s;\n", fmt.Sprintf(k.whereasA, slot))
	whereasB := k.whereasB
	if kind == KindLease {
		whereasB = fmt.Sprintf(whereasB, g.pick([]string{"residential", "office", "commercial"}))
	}
	fmt.Fprintf(&s, "WHEREAS, %s;\n\nNOW, THEREFORE, in consideration of the mutual covenants herein, the parties agree as follows:\n\n", whereasB)
	n := 0
	for _, i := range subsetIdx(g.r, len(k.articles), g.between(2, len(k.articles))) {
		n++
		h, body := k.articles[i](g, amount, months, year)
		fmt.Fprintf(&s, "Article %d %s\n%s\n", n, h, body)
	}
	for _, i := range subsetIdx(g.r, len(enTail), g.between(1, len(enTail))) {
		n++
		h, body := enTail[i](g, place.law)
		fmt.Fprintf(&s, "Article %d %s\n%s\n", n, h, body)
	}
	fmt.Fprintf(&s, "\nIN WITNESS WHEREOF, the parties have executed this Agreement as of the date first written above.\n\nParty A: %s\nParty B: %s", a.name, b.name)
	return k.title, s.String()
}

var enCauses = []struct{ claim, fact, finding string }{
	{"breach of a sale contract", "the Plaintiff delivered %s to the Defendant under a sale contract, but the Defendant failed to pay the outstanding price of %s", "the Plaintiff performed its delivery obligations and the Defendant's failure to pay the price constitutes a breach of contract"},
	{"unpaid rent under a lease", "the Defendant leased premises from the Plaintiff and failed to pay rent totalling %s%s despite repeated demands", "the lease is valid and binding and the Defendant is liable for the rent in arrears"},
	{"repayment of a loan", "the Plaintiff lent money to the Defendant, and the Defendant failed to repay the sum of %s%s when due", "the loan was advanced as evidenced by the bank transfer records and the Defendant is obliged to repay it with interest"},
}

func (g *gen) enJudgment() (string, string) {
	place := enPlaces[g.r.IntN(len(enPlaces))]
	year := g.between(2016, 2024)
	p := g.enParty(g.chance(0.5), place.city)
	d := g.enParty(g.chance(0.6), place.city)
	c := enCauses[g.r.IntN(len(enCauses))]
	amount := g.between(50, 20000) * 100
	title := "JUDGMENT"
	var s strings.Builder
	fmt.Fprintf(&s, "IN %s\nCase No. %d-CV-%05d\n\n%s, Plaintiff,\nv.\n%s, Defendant.\n\n%s\n\n", strings.ToUpper(place.court), year, g.between(1, 30000), p.name, d.name, title)
	fmt.Fprintf(&s, "The Plaintiff, %s, brings this action against the Defendant, %s, for %s.\n\n", p.name, d.name, c.claim)
	slot := ""
	if strings.Contains(c.claim, "sale") {
		slot = g.pick(enGoods)
	}
	fact := fmt.Sprintf(c.fact, slot, usd(amount))
	if slot == "" {
		fact = fmt.Sprintf(c.fact, usd(amount), "")
	}
	fmt.Fprintf(&s, "The Plaintiff alleges that %s. The Plaintiff claims %s together with interest and costs.\n\n", fact, usd(amount))
	s.WriteString(g.pick([]string{
		"The Defendant contends that the amount claimed is excessive and that part of the sum has already been paid.\n\n",
		"The Defendant did not appear although duly served with the summons.\n\n",
		"The Defendant admits the debt but disputes the rate of interest claimed.\n\n",
	}))
	fmt.Fprintf(&s, "The Court finds that %s. The evidence submitted, including the contract and payment records, supports the Plaintiff's claim.\n\n", c.finding)
	fmt.Fprintf(&s, "Accordingly, IT IS ORDERED that:\n1. The Defendant shall pay the Plaintiff %s within %d days of this Judgment;\n", usd(amount), g.pick2(10, 14, 30))
	fmt.Fprintf(&s, "2. The Defendant shall pay interest on that sum at %s per annum from %s until payment;\n", g.pick([]string{"5%", "6%", "8%"}), g.enDate(year))
	fmt.Fprintf(&s, "3. Court costs of %s shall be borne by the Defendant.\n\n", usd(max(100, amount/100)))
	fmt.Fprintf(&s, "Dated: %s\n\nJudge %s", g.enDate(year+1), g.enPerson())
	return title, s.String()
}
