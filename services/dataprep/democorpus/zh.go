package democorpus

import (
	"fmt"
	"strings"
)

var (
	zhSurnames = []string{"王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马", "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧"}
	zhGiven    = []string{"伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "华", "建国", "志强", "晓东", "海燕", "文博", "子涵", "雨欣", "浩然", "思远", "立新", "春梅"}
	zhCities   = []struct{ city, district, court, code, higher string }{
		{"北京市", "朝阳区", "北京市朝阳区人民法院", "京0105", "北京市第三中级人民法院"},
		{"北京市", "海淀区", "北京市海淀区人民法院", "京0108", "北京市第一中级人民法院"},
		{"上海市", "浦东新区", "上海市浦东新区人民法院", "沪0115", "上海市第一中级人民法院"},
		{"上海市", "徐汇区", "上海市徐汇区人民法院", "沪0104", "上海市第一中级人民法院"},
		{"深圳市", "福田区", "深圳市福田区人民法院", "粤0304", "广东省深圳市中级人民法院"},
		{"广州市", "天河区", "广州市天河区人民法院", "粤0106", "广东省广州市中级人民法院"},
		{"杭州市", "西湖区", "杭州市西湖区人民法院", "浙0106", "浙江省杭州市中级人民法院"},
		{"南京市", "玄武区", "南京市玄武区人民法院", "苏0102", "江苏省南京市中级人民法院"},
		{"成都市", "武侯区", "成都市武侯区人民法院", "川0107", "四川省成都市中级人民法院"},
		{"武汉市", "江汉区", "武汉市江汉区人民法院", "鄂0103", "湖北省武汉市中级人民法院"},
	}
	zhRoads      = []string{"建国路", "中山路", "人民路", "解放路", "长安街", "南京路", "滨江大道", "科技园路", "文化路", "和平大街", "新华路", "学院路"}
	zhBrand      = []string{"华信", "恒通", "瑞达", "鼎盛", "宏远", "金桥", "中联", "天成", "博远", "安泰", "新元", "永兴", "盛世", "众合", "嘉禾"}
	zhIndustry   = []string{"科技", "贸易", "建筑工程", "物流", "电子", "食品", "置业", "医药", "文化传媒", "机械设备", "信息技术", "商贸"}
	zhGoods      = []string{"办公电脑", "钢材", "服装面料", "医疗器械", "建筑材料", "电子元器件", "食用油", "空调设备", "汽车配件", "办公家具"}
	zhUnits      = []string{"台", "吨", "米", "套", "批", "箱", "件"}
	zhPositions  = []string{"销售经理", "软件工程师", "财务专员", "行政助理", "产品经理", "技术员", "市场专员", "人事主管"}
	zhLawFirms   = []string{"君诚", "中伦", "正平", "天元", "德和", "明理"}
	zhDurations  = []int{6, 12, 24, 36}
	zhPayMethods = []string{"银行转账", "电汇", "银行承兑汇票", "支票"}
)

type zhParty struct {
	name, id, addr, rep string
	company             bool
}

func (g *gen) zhPerson() string { return g.pick(zhSurnames) + g.pick(zhGiven) }

func (g *gen) zhCity() (string, string) {
	c := zhCities[g.r.IntN(len(zhCities))]
	return c.city, c.district
}

func (g *gen) zhAddress() string {
	city, district := g.zhCity()
	return fmt.Sprintf("%s%s%s%d号", city, district, g.pick(zhRoads), g.between(1, 999))
}

func (g *gen) zhCompany() string {
	city, _ := g.zhCity()
	return strings.TrimSuffix(city, "市") + g.pick(zhBrand) + g.pick(zhIndustry) + "有限公司"
}

func (g *gen) zhParty(company bool) zhParty {
	if company {
		return zhParty{
			name:    g.zhCompany(),
			id:      fmt.Sprintf("91%04d%012d", g.between(1100, 6500), g.r.Int64N(1e12)),
			addr:    g.zhAddress(),
			rep:     g.zhPerson(),
			company: true,
		}
	}
	return zhParty{
		name: g.zhPerson(),
		id:   fmt.Sprintf("%06d%04d%02d%02d%04d", g.between(110000, 650000), g.between(1960, 2000), g.between(1, 12), g.between(1, 28), g.between(0, 9999)),
		addr: g.zhAddress(),
	}
}

func (p zhParty) block(role string) string {
	if p.company {
		return fmt.Sprintf("%s：%s\n统一社会信用代码：%s\n住所地：%s\n法定代表人：%s\n", role, p.name, p.id, p.addr, p.rep)
	}
	return fmt.Sprintf("%s：%s\n身份证号码：%s\n住址：%s\n", role, p.name, p.id, p.addr)
}

func (g *gen) zhDate(year int) string {
	return fmt.Sprintf("%d年%d月%d日", year, g.between(1, 12), g.between(1, 28))
}

func (g *gen) zhAmount(lo, hi, step int) int { return g.between(lo/step, hi/step) * step }

// zhArticle is one article: a heading and clause variants, each a template
// filled by the generator.
type zhArticle struct {
	heading string
	clauses []func(g *gen, c *zhContract) string
}

type zhContract struct {
	a, b      zhParty
	year      int
	amount    int
	months    int
	rate      string
	goods     string
	unit      string
	qty       int
	city      string
	position  string
	penalty   int
	payMethod string
}

var zhCommonTail = []zhArticle{
	{"违约责任", []func(*gen, *zhContract) string{
		func(g *gen, c *zhContract) string {
			return fmt.Sprintf("任何一方违反本合同约定的，应当向守约方支付违约金%s，违约金不足以弥补守约方损失的，违约方还应赔偿守约方的全部损失。", yuan(c.penalty))
		},
		func(g *gen, c *zhContract) string {
			return fmt.Sprintf("一方未按本合同约定履行义务的，每逾期一日，应按未履行部分金额的%s向对方支付违约金。", g.pick([]string{"0.05%", "0.1%", "0.3%", "万分之五"}))
		},
		func(g *gen, c *zhContract) string {
			return "一方违约给对方造成损失的，应当承担赔偿责任，赔偿范围包括直接损失、可得利益损失以及为实现债权而支出的诉讼费、律师费、保全费等合理费用。"
		},
	}},
	{"不可抗力", []func(*gen, *zhContract) string{
		func(g *gen, c *zhContract) string {
			return fmt.Sprintf("因不可抗力致使本合同不能履行的，遭受不可抗力的一方应在%s日内书面通知对方，并提供相关证明，双方根据不可抗力的影响部分或全部免除责任。", lowerNumber(g.pick2(3, 7, 10, 15)))
		},
		func(g *gen, c *zhContract) string {
			return "因地震、洪水、战争等不可抗力事件导致合同无法履行的，双方互不承担违约责任，但应及时通知对方并采取措施减少损失。"
		},
	}},
	{"争议解决", []func(*gen, *zhContract) string{
		func(g *gen, c *zhContract) string {
			return fmt.Sprintf("因本合同引起的或与本合同有关的任何争议，双方应友好协商解决；协商不成的，任何一方均可向%s有管辖权的人民法院提起诉讼。", c.city)
		},
		func(g *gen, c *zhContract) string {
			return fmt.Sprintf("本合同履行过程中发生的争议，由双方协商解决；协商不成的，提交%s仲裁委员会按照申请仲裁时该会现行有效的仲裁规则进行仲裁。仲裁裁决是终局的，对双方均有约束力。", strings.TrimSuffix(c.city, "市"))
		},
		func(g *gen, c *zhContract) string {
			return "因本合同发生争议的，双方应协商解决；协商不成的，向甲方住所地人民法院提起诉讼。"
		},
	}},
	{"其他", []func(*gen, *zhContract) string{
		func(g *gen, c *zhContract) string {
			return "本合同自双方签字或盖章之日起生效。本合同未尽事宜，双方可另行签订补充协议，补充协议与本合同具有同等法律效力。本合同一式两份，甲乙双方各执一份。"
		},
		func(g *gen, c *zhContract) string {
			return fmt.Sprintf("本合同一式%s份，甲方执%s份，乙方执%s份，具有同等法律效力。本合同自%s起生效。", zhQty(4), zhQty(2), zhQty(2), g.pick([]string{"双方签字盖章之日", "甲方收到首期款项之日", "签订之日"}))
		},
	}},
}

func (g *gen) pick2(xs ...int) int { return xs[g.r.IntN(len(xs))] }

var zhKinds = map[string]struct {
	title, roleA, roleB, subject string
	companyA, companyB           float64
	body                         []zhArticle
	essential                    map[int]bool // articles every document has
}{
	KindSale: {"买卖合同", "出卖人（甲方）", "买受人（乙方）", "货物买卖", 1, 0.8, []zhArticle{
		{"标的物", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("甲方向乙方出售%s，数量为%d%s，单价为人民币%d元，总价款为%s。", c.goods, c.qty, c.unit, c.amount/c.qty, yuan(c.amount))
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("本合同项下的标的物为%s，规格型号以附件一为准，数量%d%s，合同总金额为%s，该价款已包含增值税及运输费用。", c.goods, c.qty, c.unit, yuan(c.amount))
			},
		}},
		{"质量标准", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return "甲方交付的标的物应符合国家标准及行业标准，并附有产品合格证明。没有国家标准、行业标准的，按照通常标准或者符合合同目的的特定标准执行。"
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("标的物的质量保证期为%s个月，自乙方验收合格之日起计算。质量保证期内出现质量问题的，甲方应负责免费维修或者更换。", lowerNumber(g.pick2(6, 12, 18, 24)))
			},
		}},
		{"交付", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("甲方应于%s前将标的物运至%s，运输费用由%s承担。标的物毁损、灭失的风险自交付时起由乙方承担。", g.zhDate(c.year), g.zhAddress(), g.pick([]string{"甲方", "乙方"}))
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("交货时间为本合同签订后%s日内，交货地点为乙方指定地点。乙方应在收货后%s日内进行验收，逾期未提出异议的，视为验收合格。", lowerNumber(g.pick2(7, 10, 15, 30)), lowerNumber(g.pick2(3, 5, 7)))
			},
		}},
		{"付款方式", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方应于本合同签订之日起%s日内向甲方支付合同总价款的%d%%作为预付款，余款于验收合格后%s日内以%s方式付清。", lowerNumber(g.pick2(3, 5, 7)), g.pick2(20, 30, 50), lowerNumber(g.pick2(10, 15, 30)), c.payMethod)
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方应在收到标的物及增值税专用发票后%s日内，以%s方式向甲方一次性支付全部货款。", lowerNumber(g.pick2(15, 30, 60)), c.payMethod)
			},
		}},
	}, map[int]bool{0: true, 3: true}},
	KindLease: {"房屋租赁合同", "出租人（甲方）", "承租人（乙方）", "房屋租赁", 0.4, 0.5, []zhArticle{
		{"房屋基本情况", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("甲方将其合法拥有的位于%s的房屋出租给乙方使用，建筑面积为%d.%d平方米，房屋用途为%s。", g.zhAddress(), g.between(40, 300), g.between(0, 9), g.pick([]string{"居住", "办公", "商业经营"}))
			},
		}},
		{"租赁期限", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("租赁期限为%s个月，自%s起至租期届满之日止。租赁期满，乙方需继续承租的，应提前%s日书面通知甲方。", lowerNumber(c.months), g.zhDate(c.year), lowerNumber(g.pick2(30, 60, 90)))
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("本合同租赁期共%s个月。租赁期内，甲方不得擅自收回房屋，乙方不得擅自转租。", lowerNumber(c.months))
			},
		}},
		{"租金及支付方式", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("每月租金为%s，租金按%s支付，乙方应于每%s首月的第%s日前支付当期租金。", yuan(c.amount), g.pick([]string{"月", "季度", "半年"}), g.pick([]string{"期", "季度"}), lowerNumber(g.pick2(1, 5, 10)))
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("房屋月租金为%s，以%s方式支付至甲方指定账户。", yuan(c.amount), c.payMethod)
			},
		}},
		{"押金", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方应于签订本合同时向甲方支付押金%s。租赁期满，乙方结清全部费用并返还房屋后，甲方应无息退还押金。", yuan(c.amount*g.pick2(1, 2, 3)))
			},
		}},
		{"房屋维修", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return "租赁期内，房屋及其附属设施的自然损坏由甲方负责维修；因乙方使用不当造成损坏的，由乙方负责维修或赔偿。"
			},
		}},
	}, map[int]bool{0: true, 2: true}},
	KindEmployment: {"劳动合同", "用人单位（甲方）", "劳动者（乙方）", "劳动关系", 1, 0, []zhArticle{
		{"合同期限", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("本合同为固定期限劳动合同，期限为%s个月，自%s起计算，其中试用期为%s个月。", lowerNumber(c.months), g.zhDate(c.year), zhQty(g.pick2(1, 2, 3, 6)))
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("本合同为无固定期限劳动合同，自%s起履行。", g.zhDate(c.year))
			},
		}},
		{"工作内容和工作地点", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方同意根据甲方工作需要，担任%s岗位工作，工作地点为%s。甲方可根据经营需要，经与乙方协商后调整其工作岗位。", c.position, c.city)
			},
		}},
		{"工作时间和休息休假", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return "甲方实行标准工时制度，乙方每日工作时间不超过八小时，每周工作时间不超过四十小时。乙方依法享有法定节假日、年休假、婚假、产假等假期。"
			},
			func(g *gen, c *zhContract) string {
				return "乙方所在岗位实行综合计算工时工作制。甲方安排乙方延长工作时间的，应依法支付加班工资或者安排补休。"
			},
		}},
		{"劳动报酬", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方月工资为%s，试用期工资为正式工资的百分之八十。甲方于每月%s日前以货币形式足额支付乙方上月工资。", yuan(c.amount), lowerNumber(g.pick2(5, 10, 15)))
			},
		}},
		{"社会保险", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return "甲方应依法为乙方缴纳养老保险、医疗保险、失业保险、工伤保险和生育保险以及住房公积金，个人应缴部分由甲方从乙方工资中代扣代缴。"
			},
		}},
		{"保密义务", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方应保守甲方的商业秘密。乙方离职后%s年内不得到与甲方有竞争关系的单位任职，甲方按月向乙方支付竞业限制补偿金%s。", zhQty(g.pick2(1, 2)), yuan(c.amount/10*3))
			},
		}},
	}, map[int]bool{0: true, 3: true}},
	KindLoan: {"借款合同", "出借人（甲方）", "借款人（乙方）", "借款", 0.5, 0.6, []zhArticle{
		{"借款金额", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("甲方同意向乙方出借%s，借款用途为%s，乙方不得将借款挪作他用。", yuan(c.amount), g.pick([]string{"生产经营", "资金周转", "购买原材料", "个人消费"}))
			},
		}},
		{"借款期限", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("借款期限为%s个月，自%s起计算，实际放款日期以甲方转账凭证记载的日期为准。", lowerNumber(c.months), g.zhDate(c.year))
			},
		}},
		{"借款利率", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("本合同项下借款年利率为%s，利息按月计算，乙方应于每月%s日前支付当月利息。", c.rate, lowerNumber(g.pick2(5, 10, 20)))
			},
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("借款年利率为%s，到期一次性还本付息。逾期还款的，逾期部分按年利率%s计收逾期利息。", c.rate, g.pick([]string{"6%", "8%", "12%", "15%"}))
			},
		}},
		{"还款方式", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("乙方应于借款期限届满之日一次性归还全部借款本金，并以%s方式支付至甲方指定账户。", c.payMethod)
			},
			func(g *gen, c *zhContract) string {
				return "乙方按月等额偿还借款本息，经甲方同意，乙方可以提前还款，利息按实际借款期间计算。"
			},
		}},
		{"担保", []func(*gen, *zhContract) string{
			func(g *gen, c *zhContract) string {
				return fmt.Sprintf("%s自愿为乙方在本合同项下的全部债务提供连带责任保证，保证期间为主债务履行期限届满之日起%s年。", g.zhPerson(), zhQty(g.pick2(2, 3)))
			},
		}},
	}, map[int]bool{0: true, 1: true, 2: true}},
}

func (g *gen) zhContract(kind string) (string, string) {
	k := zhKinds[kind]
	city, _ := g.zhCity()
	c := &zhContract{
		a:         g.zhParty(g.chance(k.companyA)),
		b:         g.zhParty(g.chance(k.companyB)),
		year:      g.between(2015, 2024),
		months:    zhDurations[g.r.IntN(len(zhDurations))],
		rate:      g.pick([]string{"3.65%", "4.35%", "4.75%", "5.5%", "6%", "8%"}),
		goods:     g.pick(zhGoods),
		unit:      g.pick(zhUnits),
		qty:       g.between(10, 500),
		city:      city,
		position:  g.pick(zhPositions),
		payMethod: g.pick(zhPayMethods),
	}
	switch kind {
	case KindSale:
		c.amount = c.qty * g.zhAmount(100, 20000, 10)
	case KindLease:
		c.amount = g.zhAmount(1500, 30000, 100)
	case KindEmployment:
		c.amount = g.zhAmount(4000, 40000, 500)
	case KindLoan:
		c.amount = g.zhAmount(10000, 5000000, 1000)
	}
	c.penalty = g.zhAmount(c.amount/20+1000, c.amount/5+2000, 100)

	var b strings.Builder
	b.WriteString(k.title + "\n\n")
	fmt.Fprintf(&b, "合同编号：%s-%d-%05d\n\n", g.pick([]string{"HT", "ZL", "LD", "JK", "CG"}), c.year, g.r.IntN(100000))
	b.WriteString(c.a.block(k.roleA))
	b.WriteString(c.b.block(k.roleB))
	b.WriteString("\n")
	b.WriteString(g.pick([]string{
		"根据《中华人民共和国民法典》及相关法律法规的规定，甲乙双方在平等、自愿、公平、诚实信用的基础上，就" + k.subject + "事宜协商一致，订立本合同，以资共同遵守。",
		"甲乙双方经友好协商，依据《中华人民共和国民法典》等有关法律规定，就" + k.subject + "有关事项达成如下协议：",
		"为明确双方的权利义务，根据有关法律法规，甲乙双方本着平等互利的原则，就" + k.subject + "事宜订立本合同。",
	}))
	if kind == KindEmployment {
		b.WriteString("本合同依据《中华人民共和国劳动合同法》订立。")
	}
	b.WriteString("\n\n")
	var arts []zhArticle
	for i, a := range k.body {
		if k.essential[i] || g.chance(0.7) {
			arts = append(arts, a)
		}
	}
	for _, i := range subsetIdx(g.r, len(zhCommonTail), g.between(2, len(zhCommonTail))) {
		arts = append(arts, zhCommonTail[i])
	}
	for i, a := range arts {
		clause := a.clauses[g.r.IntN(len(a.clauses))](g, c)
		fmt.Fprintf(&b, "第%s条 %s\n%s\n", lowerNumber(i+1), a.heading, clause)
	}
	b.WriteString("\n（以下无正文）\n\n")
	fmt.Fprintf(&b, "甲方（%s）：%s\n", ifThen(c.a.company, "盖章", "签字"), c.a.name)
	fmt.Fprintf(&b, "乙方（%s）：%s\n", ifThen(c.b.company, "盖章", "签字"), c.b.name)
	fmt.Fprintf(&b, "签订日期：%s\n签订地点：%s", g.zhDate(c.year), c.city)
	return k.title, b.String()
}

func ifThen(c bool, a, b string) string {
	if c {
		return a
	}
	return b
}

func (g *gen) zhDocument(kind string) (string, string) {
	if kind == KindJudgment {
		return g.zhJudgment()
	}
	return g.zhContract(kind)
}

var zhCauses = []struct {
	cause, claim, fact, reason, kind string
}{
	{"买卖合同纠纷", "货款", "原告与被告签订买卖合同，约定原告向被告供应%s，原告已依约交付货物，被告至今尚欠货款%s未付。", "原告依约交付货物后，被告应当按照约定支付价款。被告未按约定支付货款，构成违约，应当承担继续履行及赔偿损失的违约责任。", "钢材"},
	{"房屋租赁合同纠纷", "租金", "原告将其房屋出租给被告使用，双方约定了租金及支付期限。租赁期间被告拖欠租金共计%s%s，经原告多次催要未果。", "原、被告之间的房屋租赁合同系双方真实意思表示，合法有效。被告未按约定支付租金，应当承担相应的违约责任。", ""},
	{"民间借贷纠纷", "借款本金", "被告因资金周转向原告借款，原告通过银行转账交付借款%s%s，借款到期后被告未予归还。", "合法的借贷关系受法律保护。原告提供的借条及转账凭证能够证明借贷关系成立且借款已实际交付，被告应当按约返还借款并支付利息。", ""},
	{"劳动争议", "工资及经济补偿金", "原告于入职被告处担任%s，被告拖欠原告工资%s，后单方解除劳动关系且未支付经济补偿。", "用人单位应当按照劳动合同约定和国家规定，向劳动者及时足额支付劳动报酬。被告未足额支付原告工资，且违法解除劳动合同，应当支付相应的工资及赔偿金。", "销售经理"},
}

func (g *gen) zhJudgment() (string, string) {
	ci := zhCities[g.r.IntN(len(zhCities))]
	cause := zhCauses[g.r.IntN(len(zhCauses))]
	year := g.between(2016, 2024)
	plaintiff := g.zhParty(g.chance(0.4))
	defendant := g.zhParty(g.chance(0.6))
	amount := g.zhAmount(5000, 2000000, 100)
	fee := max(50, amount/100)
	judge, clerk := g.zhPerson(), g.zhPerson()
	title := "民事判决书"

	var b strings.Builder
	fmt.Fprintf(&b, "%s\n%s\n（%d）%s民初%d号\n\n", ci.court, title, year, ci.code, g.between(100, 39999))
	b.WriteString(zhLitigant("原告", plaintiff, g))
	if g.chance(0.7) {
		fmt.Fprintf(&b, "委托诉讼代理人：%s，%s%s律师事务所律师。\n", g.zhPerson(), ci.city, g.pick(zhLawFirms))
	}
	b.WriteString(zhLitigant("被告", defendant, g))
	b.WriteString("\n")
	procedure := g.pick([]string{"依法适用简易程序", "依法适用普通程序", "依法组成合议庭"})
	fmt.Fprintf(&b, "原告%s与被告%s%s一案，本院于%s立案后，%s，公开开庭进行了审理。原告%s%s到庭参加诉讼，被告%s%s。本案现已审理终结。\n\n",
		plaintiff.name, defendant.name, cause.cause, g.zhDate(year), procedure, plaintiff.name,
		g.pick([]string{"及其委托诉讼代理人", ""}), defendant.name,
		g.pick([]string{"到庭参加诉讼", "经本院传票传唤，无正当理由拒不到庭参加诉讼"}))
	interest := g.pick([]string{"全国银行间同业拆借中心公布的一年期贷款市场报价利率", "年利率3.85%", "年利率6%"})
	fmt.Fprintf(&b, "原告%s向本院提出诉讼请求：1.判令被告支付%s%s；2.判令被告以%s为基数，按照%s支付逾期付款利息；3.本案诉讼费用由被告承担。事实和理由：",
		plaintiff.name, cause.claim, yuan(amount), figures(amount)+"元", interest)
	slot := "人民币"
	switch cause.kind {
	case "钢材":
		slot = g.pick(zhGoods)
	case "销售经理":
		slot = g.pick(zhPositions)
	}
	fact := strings.TrimSuffix(fmt.Sprintf(cause.fact, slot, figures(amount)+"元"), "。") + "。"
	b.WriteString(fact + "\n\n")
	b.WriteString(g.pick([]string{
		fmt.Sprintf("被告%s辩称，%s\n\n", defendant.name, g.pick([]string{"原告主张的金额计算有误，请求法院依法核实。", "双方之间的款项已部分结清，原告的诉讼请求缺乏事实依据。", "同意支付欠款，但原告主张的利息过高，请求予以调整。"})),
		fmt.Sprintf("被告%s未作答辩。\n\n", defendant.name),
	}))
	fmt.Fprintf(&b, "本院经审理认定事实如下：%s上述事实，有合同、转账凭证及当事人陈述等证据在案佐证，本院予以确认。\n\n", fact)
	fmt.Fprintf(&b, "本院认为，%s依照《中华人民共和国民法典》第%s条、第%s条，《中华人民共和国民事诉讼法》第%s条之规定，判决如下：\n\n",
		cause.reason, lowerNumber(g.pick2(509, 577, 579, 674, 675, 703)), lowerNumber(g.pick2(583, 584, 676, 722)), lowerNumber(g.pick2(67, 147)))
	fmt.Fprintf(&b, "一、被告%s于本判决生效之日起十日内向原告%s支付%s%s；\n", defendant.name, plaintiff.name, cause.claim, yuan(amount))
	if g.chance(0.6) {
		fmt.Fprintf(&b, "二、被告%s于本判决生效之日起十日内向原告%s支付逾期付款利息（以%s元为基数，按照%s计算）；\n三、驳回原告%s的其他诉讼请求。\n\n", defendant.name, plaintiff.name, figures(amount), interest, plaintiff.name)
	} else {
		fmt.Fprintf(&b, "二、驳回原告%s的其他诉讼请求。\n\n", plaintiff.name)
	}
	b.WriteString("如果未按本判决指定的期间履行给付金钱义务，应当依照《中华人民共和国民事诉讼法》第二百六十四条之规定，加倍支付迟延履行期间的债务利息。\n\n")
	if procedure == "依法适用简易程序" {
		fmt.Fprintf(&b, "案件受理费%d元，减半收取计%d元，由被告%s负担。\n\n", fee, fee/2, defendant.name)
	} else {
		fmt.Fprintf(&b, "案件受理费%d元，由被告%s负担。\n\n", fee, defendant.name)
	}
	fmt.Fprintf(&b, "如不服本判决，可以在判决书送达之日起十五日内，向本院递交上诉状，并按对方当事人的人数提出副本，上诉于%s。\n\n", ci.higher)
	fmt.Fprintf(&b, "审判员　%s\n%s年%s月%s日\n书记员　%s", judge, yearDigits(year+1), lowerNumber(g.between(1, 12)), lowerNumber(g.between(1, 28)), clerk)
	return title, b.String()
}

func zhLitigant(role string, p zhParty, g *gen) string {
	if p.company {
		return fmt.Sprintf("%s：%s，住所地%s。\n法定代表人：%s，%s。\n", role, p.name, p.addr, p.rep, g.pick([]string{"董事长", "总经理", "执行董事"}))
	}
	return fmt.Sprintf("%s：%s，%s，%d年%d月%d日出生，汉族，住%s。\n", role, p.name, g.pick([]string{"男", "女"}), g.between(1955, 2000), g.between(1, 12), g.between(1, 28), p.addr)
}
