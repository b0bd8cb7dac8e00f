package spam

// theme is the copy of one kind of spam in one language: campaigns pick a theme and
// then a fixed subset of its lines, so members of a campaign read alike.
//
// Placeholders: {url} the campaign's link, {num} and {code} vary per message, {pct},
// {amount}, {brand}, {company}, {last} are fixed per campaign, {name} is the
// recipient's first name, {date} a date in the theme's language.
type theme struct {
	name       string
	lang       string   // en, de, fr, es, ru, zh, ja
	charsets   []string // the charsets this copy is sent in (all can encode it)
	subjects   []string
	fromNames  []string
	localParts []string
	greetings  []string
	paras      []string // body paragraphs; at least one holds {url}
	linkTexts  []string // anchor text in HTML
	closings   []string
	attach     []string // attachment kinds that fit the theme
	fileBases  []string // attachment base names
	replyTo    float64  // share of messages with a Reply-To
	phish      bool     // anchors show a popular domain's URL as their text
	hidden     []string // Bayes-poisoning words hidden in the HTML
	amounts    [2]int   // range of {amount}
}

var themes = []*theme{
	{
		name: "pharma", lang: "en", charsets: []string{"us-ascii", "utf-8", "iso-8859-1"},
		subjects: []string{
			"Save {pct}% on your prescriptions today",
			"Your pharmacy order #{num} is ready",
			"Re: discreet meds, no prescription needed",
			"Best prices on brand medications - {pct}% off",
		},
		fromNames:  []string{"Online Pharmacy", "Canadian Health Store", "RX Discount Center", "Dr. {last}"},
		localParts: []string{"orders", "pharmacy", "rx", "sales", "{first}.{last}"},
		greetings:  []string{"Hello {name},", "Hi,", "Dear friend,"},
		paras: []string{
			"Top quality medications at the lowest prices on the web.",
			"No prescription required. Discreet packaging and worldwide shipping.",
			"Order now and get {pct}% off your first order: {url}",
			"Our licensed pharmacists are available 24/7 to answer your questions.",
			"This offer is valid until {date}. Visit {url} before it expires.",
		},
		linkTexts: []string{"Order now", "Visit our shop", "Click here to save {pct}%"},
		closings:  []string{"Best regards,\nCustomer care", "Stay healthy!"},
		hidden:    []string{"meadow", "pencil", "harbor", "quietly", "orange", "seventeen", "lantern"},
		amounts:   [2]int{20, 90},
	},
	{
		name: "account", lang: "en", charsets: []string{"us-ascii", "utf-8"},
		subjects: []string{
			"Action required: your account has been limited",
			"Security alert: unusual sign-in to your {brand} account",
			"Your mailbox is almost full ({pct}% used)",
			"[{brand}] Please verify your account information",
			"Final notice: account suspension #{code}",
		},
		fromNames:  []string{"{brand} Security", "{brand} Support", "Account Team", "Mail Administrator"},
		localParts: []string{"security", "no-reply", "support", "account-update", "service"},
		greetings:  []string{"Dear {name},", "Dear customer,", "Hello,"},
		paras: []string{
			"We detected unusual activity on your account on {date}.",
			"To keep your account secure, please confirm your details within 24 hours: {url}",
			"If you do not verify your information, your account will be suspended.",
			"Sign in here to restore full access: {url}",
			"Thank you for being a valued customer.",
		},
		linkTexts: []string{"Verify now", "Restore access", "Sign in"},
		closings:  []string{"Regards,\n{brand} Account Services", "The {brand} Team"},
		attach:    []string{"html"},
		fileBases: []string{"Secure_Message", "Account_Review", "Verification_Form"},
		phish:     true,
		amounts:   [2]int{70, 99},
	},
	{
		name: "invoice", lang: "en", charsets: []string{"us-ascii", "utf-8", "iso-8859-1"},
		subjects: []string{
			"Invoice {num} from {company}",
			"Payment overdue - invoice #{num}",
			"Scanned document {code}",
			"Remittance advice {num}",
			"RE: Purchase order PO-{num}",
		},
		fromNames:  []string{"{company} Accounts", "{first} {last}", "Billing Department", "Scanner"},
		localParts: []string{"accounts", "billing", "invoices", "{first}.{last}", "scanner"},
		greetings:  []string{"Hello,", "Dear {name},", "Good morning,"},
		paras: []string{
			"Please find attached the invoice for your recent order.",
			"Kindly review the document and process the payment by {date}.",
			"You can also view the invoice online: {url}",
			"Let me know if you have any questions about the amount of ${amount}.",
		},
		linkTexts: []string{"View invoice", "Download document", "Open"},
		closings:  []string{"Best regards,\n{first} {last}\n{company}", "Thanks,\n{first}"},
		attach:    []string{"zip-js", "zip-exe", "zip-txt", "pdf", "doc"},
		fileBases: []string{"Invoice_{num}", "Scan_{code}", "PO-{num}", "Remittance_{num}"},
		amounts:   [2]int{400, 9000},
	},
	{
		name: "crypto", lang: "en", charsets: []string{"utf-8"},
		subjects: []string{
			"🚀 Turn $250 into ${amount} in 7 days",
			"💰 Bitcoin just made {name} rich. You're next",
			"Your crypto wallet bonus is waiting ✅",
		},
		fromNames:  []string{"Crypto Profit 📈", "Bitcoin Insider", "{first} from CryptoEdge"},
		localParts: []string{"invest", "news", "{first}", "bonus"},
		greetings:  []string{"Hi {name} 👋", "Hello,"},
		paras: []string{
			"Thousands of people are already earning with our automated trading platform.",
			"Start with just $250 and watch your balance grow 📈",
			"Register now: {url}",
			"Limited places available — act today!",
		},
		linkTexts: []string{"Start earning 🚀", "Claim your bonus", "Join now"},
		closings:  []string{"To the moon,\n{first}", "The CryptoEdge Team"},
		hidden:    []string{"garden", "velvet", "thunder", "blanket", "cobalt"},
		amounts:   [2]int{5000, 25000},
	},
	{
		name: "lottery", lang: "en", charsets: []string{"utf-8"},
		subjects: []string{
			"Congratulations! You have won €{amount}",
			"URGENT: unclaimed prize notification {code}",
			"From the desk of Barrister {last}",
		},
		fromNames:  []string{"International Lottery Board", "Barrister {first} {last}", "Claims Department"},
		localParts: []string{"claims", "info", "{first}.{last}", "award"},
		greetings:  []string{"Dear Winner,", "Attention: {name}", "Dear beneficiary,"},
		paras: []string{
			"Your email address was selected in our international draw held on {date}.",
			"You have won the sum of €{amount}.00 (in words: a large sum of euros).",
			"To claim your prize, reply with your full name, address and phone number.",
			"See the official results: {url}",
			"Your reference number is {code}. Keep it confidential.",
		},
		linkTexts: []string{"Official results", "Check your ticket"},
		closings:  []string{"Yours faithfully,\n{first} {last}\nClaims agent"},
		replyTo:   1,
		amounts:   [2]int{250000, 2500000},
	},
	{
		name: "watches", lang: "en", charsets: []string{"us-ascii", "iso-8859-1"},
		subjects: []string{
			"Luxury watches at {pct}% off",
			"Swiss replicas from ${amount}",
			"Get the look for less - new collection",
		},
		fromNames:  []string{"Replica Store", "Luxury Outlet", "{first} {last}"},
		localParts: []string{"store", "outlet", "{first}"},
		greetings:  []string{"Hi there,", "Hello {name},"},
		paras: []string{
			"Our new collection of Swiss-made replicas has just arrived.",
			"Prices start at only ${amount} with free shipping.",
			"Browse the catalogue: {url}",
			"Nobody will notice the difference.",
		},
		linkTexts: []string{"Browse the catalogue", "Shop now"},
		closings:  []string{"Regards,\nthe Outlet team"},
		hidden:    []string{"sparrow", "kettle", "dolphin", "marble", "quartz"},
		amounts:   [2]int{79, 199},
	},
	{
		name: "rechnung", lang: "de", charsets: []string{"iso-8859-1", "utf-8"},
		subjects: []string{
			"Ihre Rechnung Nr. {num} ist überfällig",
			"Wichtige Sicherheitsmitteilung für Ihr Konto",
			"Zahlungserinnerung: offener Betrag {amount},00 EUR",
			"Bestätigen Sie Ihre Daten - letzte Erinnerung",
		},
		fromNames:  []string{"Kundenservice", "{company} Buchhaltung", "Sicherheitsabteilung", "Jürgen Müller"},
		localParts: []string{"kundenservice", "rechnung", "buchhaltung", "j.mueller"},
		greetings:  []string{"Sehr geehrte Kundin, sehr geehrter Kunde,", "Guten Tag {name},", "Hallo,"},
		paras: []string{
			"leider konnten wir Ihre letzte Zahlung nicht verbuchen.",
			"Bitte überprüfen Sie Ihre Daten über den folgenden Link: {url}",
			"Die Rechnung über {amount},00 EUR finden Sie im Anhang.",
			"Sollte die Zahlung bis zum {date} nicht eingehen, müssen wir weitere Schritte einleiten.",
			"Ihr Zugang wird aus Sicherheitsgründen vorübergehend gesperrt.",
		},
		linkTexts: []string{"Jetzt bestätigen", "Rechnung ansehen", "Hier klicken"},
		closings:  []string{"Mit freundlichen Grüßen\nIhr Kundenservice", "Freundliche Grüße\n{company}"},
		attach:    []string{"pdf", "zip-js", "doc"},
		fileBases: []string{"Rechnung_{num}", "Mahnung_{num}", "Zahlungserinnerung_März"},
		amounts:   [2]int{120, 3000},
	},
	{
		name: "colis", lang: "fr", charsets: []string{"iso-8859-1", "utf-8"},
		subjects: []string{
			"Votre colis n° {num} est en attente de livraison",
			"Félicitations ! Vous avez gagné un cadeau",
			"Dernier rappel : frais de livraison impayés",
		},
		fromNames:  []string{"Service Livraison", "La Poste Colis", "Service client"},
		localParts: []string{"livraison", "suivi", "service.client"},
		greetings:  []string{"Bonjour,", "Bonjour {name},", "Cher client,"},
		paras: []string{
			"Votre colis n'a pas pu être livré car des frais de douane de 1,99 EUR restent à payer.",
			"Veuillez régler ces frais avant le {date} : {url}",
			"Sans paiement, votre colis sera renvoyé à l'expéditeur.",
			"Suivez votre envoi en temps réel sur {url}",
		},
		linkTexts: []string{"Payer les frais", "Suivre mon colis", "Cliquez ici"},
		closings:  []string{"Cordialement,\nLe service client", "Merci de votre confiance."},
		amounts:   [2]int{1, 5},
	},
	{
		name: "prestamo", lang: "es", charsets: []string{"iso-8859-1", "utf-8"},
		subjects: []string{
			"¡Oferta exclusiva sólo para usted!",
			"Préstamos rápidos sin aval - respuesta en 24 horas",
			"Su pedido nº {num} ha sido enviado",
		},
		fromNames:  []string{"Créditos Rápidos", "Atención al cliente", "{first} {last}"},
		localParts: []string{"creditos", "info", "atencion"},
		greetings:  []string{"Estimado cliente,", "Hola {name},"},
		paras: []string{
			"Le ofrecemos un préstamo de hasta {amount} euros con aprobación inmediata.",
			"Sin papeleo y sin preguntas. Solicítelo aquí: {url}",
			"La oferta termina el {date}.",
		},
		linkTexts: []string{"Solicitar ahora", "Más información"},
		closings:  []string{"Atentamente,\nel equipo de atención al cliente"},
		amounts:   [2]int{3000, 60000},
	},
	{
		name: "reklama", lang: "ru", charsets: []string{"koi8-r", "windows-1251", "utf-8"},
		subjects: []string{
			"Выгодное предложение для вашего бизнеса",
			"Базы данных клиентов по всей России",
			"Рассылка по {amount} адресам за один день",
			"Продвижение сайтов: скидка {pct}%",
		},
		fromNames:  []string{"Отдел продаж", "Реклама", "Менеджер Ольга"},
		localParts: []string{"sales", "reklama", "olga", "info"},
		greetings:  []string{"Здравствуйте!", "Добрый день!"},
		paras: []string{
			"Предлагаем услуги по продвижению вашего сайта и рекламные рассылки.",
			"Подробности на нашем сайте: {url}",
			"Скидка {pct}% до конца месяца.",
			"Звоните или пишите, ответим на все вопросы.",
		},
		linkTexts: []string{"Подробнее", "Перейти на сайт"},
		closings:  []string{"С уважением,\nотдел продаж"},
		amounts:   [2]int{10000, 500000},
	},
	{
		name: "znakomstva", lang: "ru", charsets: []string{"windows-1251", "koi8-r", "utf-8"},
		subjects: []string{
			"Знакомства в вашем городе",
			"Анна хочет познакомиться с вами",
			"У вас {num} новых сообщений",
		},
		fromNames:  []string{"Анна", "Сервис знакомств", "Катя"},
		localParts: []string{"anna", "katya", "znakomstva"},
		greetings:  []string{"Привет!", "Привет, {name}!"},
		paras: []string{
			"Я нашла твой профиль и хочу познакомиться.",
			"Мои фото здесь: {url}",
			"Жду ответа, целую!",
		},
		linkTexts: []string{"Смотреть фото", "Ответить"},
		closings:  []string{"Твоя Анна"},
		amounts:   [2]int{3, 40},
	},
	{
		name: "fapiao", lang: "zh", charsets: []string{"gb2312", "utf-8"},
		subjects: []string{
			"代开各地发票，税点优惠",
			"专业网站推广，快速提升排名",
			"您好，诚邀合作",
		},
		fromNames:  []string{"王经理", "发票服务", "网络推广部"},
		localParts: []string{"wang", "fapiao", "service"},
		greetings:  []string{"您好！"},
		paras: []string{
			"本公司常年代开各地正规发票，税点优惠，可先验票后付款。",
			"详情请访问：{url}",
			"联系人：王经理",
			"欢迎来电咨询。",
		},
		linkTexts: []string{"点击查看", "详情"},
		closings:  []string{"谢谢！"},
		amounts:   [2]int{1, 9},
	},
	{
		name: "kakunin", lang: "ja", charsets: []string{"shift_jis", "utf-8"},
		subjects: []string{
			"【重要】アカウント確認のお願い",
			"お客様の口座が一時停止されました",
			"【緊急】ご本人様確認のお知らせ",
		},
		fromNames:  []string{"カスタマーサポート", "アカウント管理センター"},
		localParts: []string{"support", "info", "account"},
		greetings:  []string{"お客様各位"},
		paras: []string{
			"いつもご利用いただきありがとうございます。",
			"お客様のアカウントで不審なログインが検出されました。",
			"以下のリンクから本人確認を行ってください：{url}",
			"２４時間以内に確認がない場合、アカウントは停止されます。",
		},
		linkTexts: []string{"本人確認", "ログイン"},
		closings:  []string{"カスタマーサポート"},
		phish:     true,
		amounts:   [2]int{1, 9},
	},
}

var (
	firstNames = []string{"John", "Mary", "Peter", "Linda", "James", "Anna", "David", "Sarah", "Michael", "Laura", "Robert", "Emma"}
	lastNames  = []string{"Smith", "Johnson", "Brown", "Miller", "Wilson", "Moore", "Taylor", "Anderson", "Clark", "Walker", "Young", "King"}
	companies  = []string{"Northwind Traders", "Contoso Ltd", "Globex Corporation", "Initech", "Acme Supplies", "Umbrella Logistics", "Vandelay Industries"}
	// freemail domains for Reply-To addresses and Gmail-sent spam; addresses only,
	// never URLs, so they need no lab DNS.
	freemail = []string{"gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "mail.ru", "yandex.ru", "qq.com", "163.com", "gmx.de", "web.de"}
	brands   = map[string]string{"google.com": "Google", "microsoft.com": "Microsoft", "apple.com": "Apple",
		"amazon.com": "Amazon", "office.com": "Office 365", "wikipedia.org": "Wikipedia", "cloudflare.com": "Cloudflare", "akamaized.net": "Akamai"}
)
