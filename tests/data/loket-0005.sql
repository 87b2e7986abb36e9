-- A SQLite database made by Wijkloket at schema revision 0005 (before free text entered the
-- chain by digest), by tests/data/make_0005.py with that version's code; tests/test_free_text.py upgrades it.
BEGIN TRANSACTION;
CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO "alembic_version" VALUES('0005');
CREATE TABLE audit_seal (
	id INTEGER NOT NULL, 
	sealed_at DATETIME NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	cases INTEGER NOT NULL, 
	events INTEGER NOT NULL, 
	prev_digest VARCHAR(64) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE audit_seal_head (
	seal_id INTEGER NOT NULL, 
	case_id INTEGER NOT NULL, 
	ref VARCHAR(32) NOT NULL, 
	seq INTEGER NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (seal_id, case_id), 
	FOREIGN KEY(seal_id) REFERENCES audit_seal (id)
);
CREATE TABLE case_event (
	id INTEGER NOT NULL, 
	case_id INTEGER NOT NULL, 
	seq INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	actor VARCHAR(64) NOT NULL, 
	action VARCHAR(32) NOT NULL, 
	from_state VARCHAR(64), 
	to_state VARCHAR(64), 
	"trigger" VARCHAR(64), 
	comment VARCHAR, 
	data JSON, 
	digests JSON, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(case_id) REFERENCES cases (id), 
	UNIQUE (case_id, seq)
);
INSERT INTO "case_event" VALUES(1,1,1,'2026-03-02 09:00:00.000000','2026-12-06 07:49:18.937197','c.devries','created',NULL,'ingediend',NULL,NULL,'{"title": "Straatfeest Lindelaan", "description": "Buurman Kees Oudevrijs klaagt al jaren", "name": "Geertruida Zwanenburg", "email": "g.zwanenburg@example.org"}','{"name": "107d167f83b4cb1f6dd49fcb230bb23b27fad23211f6dc87be97096f55cc314a", "email": "1eb5cf1c9270dfa640c63678c0c0b3e37f6ea40ac6ed814ef0c58136dde1032a"}','0000000000000000000000000000000000000000000000000000000000000000','ecc5afcf84d441bb2bddcb1b7477ba83a8d37c1fa71822bf9d7c7dfcac6b89c5');
INSERT INTO "case_event" VALUES(2,1,2,'2026-03-02 10:00:00.000000','2026-12-06 07:49:18.941698','c.devries','comment',NULL,NULL,NULL,'Melder Els de Wit belde, tel 06-12345678',NULL,NULL,'ecc5afcf84d441bb2bddcb1b7477ba83a8d37c1fa71822bf9d7c7dfcac6b89c5','083242c0330ff7abcdbef94cfd44edc82d67ff18146be214fceeb8ea732113e0');
INSERT INTO "case_event" VALUES(3,1,3,'2026-03-02 11:00:00.000000','2026-12-06 07:49:18.942776','c.devries','suspended',NULL,NULL,NULL,NULL,'{"reason": "Wachten op brief van Jan Klaassen"}',NULL,'083242c0330ff7abcdbef94cfd44edc82d67ff18146be214fceeb8ea732113e0','a1d7b2c6864df22fa02651a47f556700180e121ef05bb88446b385e5bc20ecb0');
CREATE TABLE cases (
	id INTEGER NOT NULL, 
	ref VARCHAR(32) NOT NULL, 
	type_key VARCHAR(64) NOT NULL, 
	type_version INTEGER NOT NULL, 
	state VARCHAR(64) NOT NULL, 
	owner VARCHAR(64), 
	assignee VARCHAR(64), 
	data JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	created_by VARCHAR(64) NOT NULL, 
	state_entered_at DATETIME NOT NULL, 
	stay INTEGER NOT NULL, 
	state_due DATETIME, 
	service_due DATETIME, 
	case_due DATETIME, 
	case_due_limit DATETIME, 
	next_fire_at DATETIME, 
	suspended_at DATETIME, 
	suspended_manually BOOLEAN NOT NULL, 
	closed_at DATETIME, 
	escalation_level INTEGER NOT NULL, 
	service_fired BOOLEAN NOT NULL, 
	lead_fired BOOLEAN NOT NULL, 
	version INTEGER NOT NULL, 
	last_seq INTEGER NOT NULL, 
	last_hash VARCHAR(64) NOT NULL, 
	salt VARCHAR(64), 
	redacted_at DATETIME, last_at DATETIME, directive_seq INTEGER, directive_given_at DATETIME, directive_state VARCHAR(64), directive_due DATETIME, directive_met_at DATETIME, directive_missed_at DATETIME, 
	PRIMARY KEY (id), 
	UNIQUE (ref)
);
INSERT INTO "cases" VALUES(1,'BI-2026-00001','bewonersinitiatief',1,'ingediend','wijkteam',NULL,'{"title": "Straatfeest Lindelaan", "description": "Buurman Kees Oudevrijs klaagt al jaren", "name": "Geertruida Zwanenburg", "email": "g.zwanenburg@example.org"}','2026-03-02 09:00:00.000000','c.devries','2026-03-02 09:00:00.000000',1,'2026-03-09 22:59:59.000000','2026-03-30 21:59:59.000000','2026-04-28 21:59:59.000000','2026-06-09 21:59:59.000000',NULL,'2026-03-02 11:00:00.000000',1,NULL,0,0,0,4,3,'a1d7b2c6864df22fa02651a47f556700180e121ef05bb88446b385e5bc20ecb0','372334b4b0ce31bc1c8526c2d7546ed7',NULL,'2026-03-02 11:00:00.000000',NULL,NULL,NULL,NULL,NULL,NULL);
CREATE TABLE config_event (
	id INTEGER NOT NULL, 
	seq INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	recorded_at DATETIME NOT NULL, 
	actor VARCHAR(64) NOT NULL, 
	login VARCHAR(64), 
	action VARCHAR(32) NOT NULL, 
	detail JSON, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (seq)
);
INSERT INTO "config_event" VALUES(1,1,'2026-03-02 09:00:00.000000','2026-12-06 07:49:18.856082','root','root','org_load','{"organisation": 1, "digest": "d32d21f6b299fc350b1ecd6a162caa58082f9464ae22b17498cdfcf6b33b8acf", "changes": {"first": true, "settings": ["municipality", "language", "timezone", "mail_domain", "closed_days"], "units_added": ["openbare_ruimte", "politie", "welzijn", "welzijnsorganisatie", "wijkteam", "woningcorporatie"], "people_added": ["a.jansen", "a.vos", "b.bakker", "b.vandenberg", "c.devries", "d.kok", "d.smit", "e.vanleeuwen", "f.peters", "g.kuipers", "h.smits", "i.ouali", "j.wolters", "k.hendriks", "l.mulder", "m.schouten", "n.yilmaz", "o.aydin", "p.dejong", "r.dijkstra", "s.koster", "t.visser", "w.bos", "y.vermeulen"], "roles": {"a.jansen": {"before": {}, "after": {"wijkteam": "head"}}, "a.vos": {"before": {}, "after": {"welzijnsorganisatie": "lead"}}, "b.bakker": {"before": {}, "after": {"wijkteam": "lead"}}, "b.vandenberg": {"before": {}, "after": {"politie": "lead"}}, "c.devries": {"before": {}, "after": {"wijkteam": "staff", "openbare_ruimte": "staff"}}, "d.kok": {"before": {}, "after": {"politie": "staff"}}, "d.smit": {"before": {}, "after": {"*": "auditor"}}, "e.vanleeuwen": {"before": {}, "after": {"openbare_ruimte": "lead"}}, "f.peters": {"before": {}, "after": {"welzijn": "staff"}}, "g.kuipers": {"before": {}, "after": {"woningcorporatie": "head"}}, "h.smits": {"before": {}, "after": {"openbare_ruimte": "head"}}, "i.ouali": {"before": {}, "after": {"welzijn": "staff"}}, "j.wolters": {"before": {}, "after": {}}, "k.hendriks": {"before": {}, "after": {"openbare_ruimte": "staff"}}, "l.mulder": {"before": {}, "after": {"wijkteam": "staff"}}, "m.schouten": {"before": {}, "after": {"politie": "staff"}}, "n.yilmaz": {"before": {}, "after": {"openbare_ruimte": "staff"}}, "o.aydin": {"before": {}, "after": {"welzijnsorganisatie": "staff"}}, "p.dejong": {"before": {}, "after": {"welzijn": "head"}}, "r.dijkstra": {"before": {}, "after": {"woningcorporatie": "staff"}}, "s.koster": {"before": {}, "after": {}}, "t.visser": {"before": {}, "after": {"wijkteam": "staff"}}, "w.bos": {"before": {}, "after": {"welzijn": "lead"}}, "y.vermeulen": {"before": {}, "after": {"woningcorporatie": "lead"}}}, "administrators_added": ["wethouder.openbare_ruimte", "wethouder.wijken", "wethouder.zorg"]}}','0000000000000000000000000000000000000000000000000000000000000000','33347629a5b89a0c1579b6533ee118e0878f4a7b0c38f469c4c26a9f5264aab0');
INSERT INTO "config_event" VALUES(2,2,'2026-03-02 09:00:00.000000','2026-12-06 07:49:18.931147','root','root','workflow_load','{"types": [{"row": 1, "key": "bewonersinitiatief", "version": 1, "digest": "839dda3ab2895c6fc2bf068065f358f268133fb8a14e448c9f8615e53b75d1c4"}, {"row": 2, "key": "bijdrage", "version": 1, "digest": "c68ba53895ad6a6f453be3cbccf6e61a9f89dad08ff5b2c5753f0ad78dcb07bf"}, {"row": 3, "key": "melding", "version": 1, "digest": "bbfbb758e615ba3627b053e3876046b912f0cfcfa2385769747a899dc5c7ba7d"}]}','33347629a5b89a0c1579b6533ee118e0878f4a7b0c38f469c4c26a9f5264aab0','5c9eb6b2ba6a7ff54cdef43c2f7f3958db3155d8f609038ad2cd21bf9636b383');
CREATE TABLE escalation (
	id INTEGER NOT NULL, 
	case_id INTEGER NOT NULL, 
	stay INTEGER NOT NULL, 
	rung VARCHAR(16) NOT NULL, 
	state VARCHAR(64) NOT NULL, 
	unit VARCHAR(64), 
	recipient VARCHAR(64) NOT NULL, 
	due_at DATETIME NOT NULL, 
	fired_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(case_id) REFERENCES cases (id), 
	UNIQUE (case_id, stay, rung)
);
CREATE TABLE loket_meta (
	"key" VARCHAR(64) NOT NULL, 
	value VARCHAR NOT NULL, 
	PRIMARY KEY ("key")
);
CREATE TABLE organisation (
	id INTEGER NOT NULL, 
	data JSON NOT NULL, 
	source VARCHAR NOT NULL, 
	loaded_at DATETIME NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "organisation" VALUES(1,'{"municipality": "Gemeente Voorbeeld", "language": "nl", "timezone": "Europe/Amsterdam", "mail_domain": "voorbeeld.example", "closed_days": ["2026-12-28", "2026-12-29", "2027-04-26", "2027-05-07"], "administrators": [{"id": "wethouder.wijken", "name": "Fatima El Idrissi", "email": "wethouder.wijken@voorbeeld.example", "portfolios": ["wijken"], "assistants": ["j.wolters"]}, {"id": "wethouder.openbare_ruimte", "name": "Pieter Hoekstra", "email": "wethouder.openbareruimte@voorbeeld.example", "portfolios": ["openbare_ruimte"], "assistants": ["s.koster"]}, {"id": "wethouder.zorg", "name": "Ingrid Meijer", "email": "wethouder.zorg@voorbeeld.example", "portfolios": ["zorg", "welzijn"]}], "units": {"wijkteam": {"name": "Wijkteam Noord", "kind": "department", "email": "wijkteam.noord@voorbeeld.example"}, "openbare_ruimte": {"name": "Openbare Ruimte", "kind": "department", "email": "openbareruimte@voorbeeld.example"}, "welzijn": {"name": "Welzijn en Zorg", "kind": "department"}, "woningcorporatie": {"name": "Woningcorporatie Thuis", "kind": "partner", "email": "wijkzaken@woningcorporatiethuis.example"}, "politie": {"name": "Politie Basisteam Voorbeeld", "kind": "partner", "email": "basisteam@politie-voorbeeld.example"}, "welzijnsorganisatie": {"name": "Stichting Welzijn Voorbeeld", "kind": "partner"}}, "people": [{"id": "a.jansen", "name": "Anna Jansen", "email": "a.jansen@voorbeeld.example", "roles": {"wijkteam": "head"}}, {"id": "b.bakker", "name": "Bram Bakker", "email": "b.bakker@voorbeeld.example", "roles": {"wijkteam": "lead"}}, {"id": "c.devries", "name": "Chris de Vries", "email": "c.devries@voorbeeld.example", "roles": {"wijkteam": "staff", "openbare_ruimte": "staff"}}, {"id": "l.mulder", "name": "Lotte Mulder", "email": "l.mulder@voorbeeld.example", "roles": {"wijkteam": "staff"}}, {"id": "t.visser", "name": "Tom Visser", "email": "t.visser@voorbeeld.example", "roles": {"wijkteam": "staff"}}, {"id": "h.smits", "name": "Henk Smits", "email": "h.smits@voorbeeld.example", "roles": {"openbare_ruimte": "head"}}, {"id": "e.vanleeuwen", "name": "Esther van Leeuwen", "email": "e.vanleeuwen@voorbeeld.example", "roles": {"openbare_ruimte": "lead"}}, {"id": "k.hendriks", "name": "Kees Hendriks", "email": "k.hendriks@voorbeeld.example", "roles": {"openbare_ruimte": "staff"}}, {"id": "n.yilmaz", "name": "Nazl\u0131 Y\u0131lmaz", "email": "n.yilmaz@voorbeeld.example", "roles": {"openbare_ruimte": "staff"}}, {"id": "p.dejong", "name": "Petra de Jong", "email": "p.dejong@voorbeeld.example", "roles": {"welzijn": "head"}}, {"id": "w.bos", "name": "Willem Bos", "email": "w.bos@voorbeeld.example", "roles": {"welzijn": "lead"}}, {"id": "i.ouali", "name": "Ilham Ouali", "email": "i.ouali@voorbeeld.example", "roles": {"welzijn": "staff"}}, {"id": "f.peters", "name": "Femke Peters", "email": "f.peters@voorbeeld.example", "roles": {"welzijn": "staff"}}, {"id": "g.kuipers", "name": "Gerard Kuipers", "email": "g.kuipers@woningcorporatiethuis.example", "roles": {"woningcorporatie": "head"}}, {"id": "y.vermeulen", "name": "Yvonne Vermeulen", "email": "y.vermeulen@woningcorporatiethuis.example", "roles": {"woningcorporatie": "lead"}}, {"id": "r.dijkstra", "name": "Rik Dijkstra", "email": "r.dijkstra@woningcorporatiethuis.example", "roles": {"woningcorporatie": "staff"}}, {"id": "b.vandenberg", "name": "Bas van den Berg", "email": "b.vandenberg@politie-voorbeeld.example", "roles": {"politie": "lead"}}, {"id": "m.schouten", "name": "Mark Schouten", "email": "m.schouten@politie-voorbeeld.example", "roles": {"politie": "staff"}}, {"id": "d.kok", "name": "Demi Kok", "email": "d.kok@politie-voorbeeld.example", "roles": {"politie": "staff"}}, {"id": "a.vos", "name": "Anouk Vos", "email": "a.vos@welzijnvoorbeeld.example", "roles": {"welzijnsorganisatie": "lead"}}, {"id": "o.aydin", "name": "Okan Ayd\u0131n", "email": "o.aydin@welzijnvoorbeeld.example", "roles": {"welzijnsorganisatie": "staff"}}, {"id": "j.wolters", "name": "Joost Wolters", "email": "j.wolters@voorbeeld.example", "roles": {}}, {"id": "s.koster", "name": "Sietske Koster", "email": "s.koster@voorbeeld.example", "roles": {}}, {"id": "d.smit", "name": "Dana Smit", "email": "d.smit@voorbeeld.example", "roles": {"*": "auditor"}}]}','# Voorbeeldorganisatie voor Wijkloket: een fictieve gemeente met haar wijkteam,
# twee vakafdelingen en drie partners. Alle namen en adressen zijn verzonnen;
# e-mail gaat uitsluitend naar .example-domeinen (RFC 2606), zodat een
# verkeerd geconfigureerde SMTP-transport nooit een echte mailbox bereikt.
#
# Laden: loket init --org workflows/organisation.yaml
#        loket org load workflows/organisation.yaml

municipality: Gemeente Voorbeeld
language: nl
timezone: Europe/Amsterdam
# Het maildomein van de gemeente: Wijkloket verstuurt standaard vanaf wijkloket@ dit domein.
mail_domain: voorbeeld.example

# Extra sluitingsdagen naast weekenden en de feestdagen van de Algemene termijnenwet.
closed_days:
  - 2026-12-28   # maandag: collectieve sluiting tussen Kerst en Oud en Nieuw
  - 2026-12-29   # dinsdag: idem
  - 2027-04-26   # maandag: brugdag vóór Koningsdag (dinsdag 27 april 2027)
  - 2027-05-07   # vrijdag: brugdag na Hemelvaartsdag (donderdag 6 mei 2027)

# De bestuurders: zij krijgen de laatste sport van de escalatieladder van de
# aanvraagsoorten in hun portefeuille.
administrators:
  - id: wethouder.wijken
    name: Fatima El Idrissi
    email: wethouder.wijken@voorbeeld.example
    portfolios: [wijken]                  # Wijken en Leefbaarheid
    assistants: [j.wolters]               # bestuursadviseur: reageert en geeft opdrachten namens de wethouder
  - id: wethouder.openbare_ruimte
    name: Pieter Hoekstra
    email: wethouder.openbareruimte@voorbeeld.example
    portfolios: [openbare_ruimte]         # Openbare Ruimte en Beheer
    assistants: [s.koster]                # bestuursondersteuner Openbare Ruimte
  - id: wethouder.zorg
    name: Ingrid Meijer
    email: wethouder.zorg@voorbeeld.example
    portfolios: [zorg, welzijn]           # Zorg en Welzijn

# Een eenheid met een e-mailadres (een gedeelde postbus) krijgt daar de berichten dat een
# zaak bij haar is binnengekomen; zonder postbus krijgen haar teamleiders ze (of, zonder
# teamleider, haar hoofden). Bewoners krijgen de postbus als contactadres.
units:
  wijkteam:            {name: Wijkteam Noord, kind: department, email: wijkteam.noord@voorbeeld.example}
  openbare_ruimte:     {name: Openbare Ruimte, kind: department, email: openbareruimte@voorbeeld.example}
  welzijn:             {name: Welzijn en Zorg, kind: department}
  woningcorporatie:    {name: Woningcorporatie Thuis, kind: partner, email: wijkzaken@woningcorporatiethuis.example}
  politie:             {name: Politie Basisteam Voorbeeld, kind: partner, email: basisteam@politie-voorbeeld.example}
  welzijnsorganisatie: {name: Stichting Welzijn Voorbeeld, kind: partner}

people:
  # --- Wijkteam Noord (gemeente) ------------------------------------------
  - id: a.jansen
    name: Anna Jansen                     # afdelingshoofd Wijken
    email: a.jansen@voorbeeld.example
    roles: {wijkteam: head}
  - id: b.bakker
    name: Bram Bakker                     # teamleider wijkteam
    email: b.bakker@voorbeeld.example
    roles: {wijkteam: lead}
  - id: c.devries
    name: Chris de Vries                  # wijkbeheerder: zit in het wijkteam én bij Openbare Ruimte
    email: c.devries@voorbeeld.example
    roles: {wijkteam: staff, openbare_ruimte: staff}
  - id: l.mulder
    name: Lotte Mulder                    # wijkcoördinator
    email: l.mulder@voorbeeld.example
    roles: {wijkteam: staff}
  - id: t.visser
    name: Tom Visser                      # wijkregisseur
    email: t.visser@voorbeeld.example
    roles: {wijkteam: staff}

  # --- Openbare Ruimte (gemeente) ------------------------------------------
  - id: h.smits
    name: Henk Smits                      # afdelingshoofd Openbare Ruimte
    email: h.smits@voorbeeld.example
    roles: {openbare_ruimte: head}
  - id: e.vanleeuwen
    name: Esther van Leeuwen              # teamleider beheer en onderhoud
    email: e.vanleeuwen@voorbeeld.example
    roles: {openbare_ruimte: lead}
  - id: k.hendriks
    name: Kees Hendriks                   # opzichter
    email: k.hendriks@voorbeeld.example
    roles: {openbare_ruimte: staff}
  - id: n.yilmaz
    name: Nazlı Yılmaz                    # medewerker meldingen openbare ruimte
    email: n.yilmaz@voorbeeld.example
    roles: {openbare_ruimte: staff}

  # --- Welzijn en Zorg (gemeente) ------------------------------------------
  - id: p.dejong
    name: Petra de Jong                   # afdelingshoofd Welzijn en Zorg
    email: p.dejong@voorbeeld.example
    roles: {welzijn: head}
  - id: w.bos
    name: Willem Bos                      # teamleider sociaal domein
    email: w.bos@voorbeeld.example
    roles: {welzijn: lead}
  - id: i.ouali
    name: Ilham Ouali                     # beleidsmedewerker welzijn
    email: i.ouali@voorbeeld.example
    roles: {welzijn: staff}
  - id: f.peters
    name: Femke Peters                    # consulent Wmo
    email: f.peters@voorbeeld.example
    roles: {welzijn: staff}

  # --- Woningcorporatie Thuis (partner, met leidinggevende) ----------------
  - id: g.kuipers
    name: Gerard Kuipers                  # manager wonen
    email: g.kuipers@woningcorporatiethuis.example
    roles: {woningcorporatie: head}
  - id: y.vermeulen
    name: Yvonne Vermeulen                # teamleider wijkconsulenten
    email: y.vermeulen@woningcorporatiethuis.example
    roles: {woningcorporatie: lead}
  - id: r.dijkstra
    name: Rik Dijkstra                    # wijkconsulent
    email: r.dijkstra@woningcorporatiethuis.example
    roles: {woningcorporatie: staff}

  # --- Politie Basisteam Voorbeeld (partner, zonder head) ------------------
  # Bewust geen head: een escalatie naar "head" schuift door naar de wethouder
  # van de portefeuille (vacatureregel, SPEC §4.2).
  - id: b.vandenberg
    name: Bas van den Berg                # operationeel expert, aanspreekpunt gemeente
    email: b.vandenberg@politie-voorbeeld.example
    roles: {politie: lead}
  - id: m.schouten
    name: Mark Schouten                   # wijkagent Noord
    email: m.schouten@politie-voorbeeld.example
    roles: {politie: staff}
  - id: d.kok
    name: Demi Kok                        # wijkagent Noord
    email: d.kok@politie-voorbeeld.example
    roles: {politie: staff}

  # --- Stichting Welzijn Voorbeeld (partner, zonder head) ------------------
  - id: a.vos
    name: Anouk Vos                       # coördinator opbouwwerk
    email: a.vos@welzijnvoorbeeld.example
    roles: {welzijnsorganisatie: lead}
  - id: o.aydin
    name: Okan Aydın                      # opbouwwerker
    email: o.aydin@welzijnvoorbeeld.example
    roles: {welzijnsorganisatie: staff}

  # --- Bestuur ----------------------------------------------------------------
  - id: j.wolters
    name: Joost Wolters                   # bestuursadviseur van de wethouder Wijken (assistent)
    email: j.wolters@voorbeeld.example
  - id: s.koster
    name: Sietske Koster                  # bestuursondersteuner van de wethouder Openbare Ruimte (assistent)
    email: s.koster@voorbeeld.example

  # --- Controle --------------------------------------------------------------
  - id: d.smit
    name: Dana Smit                       # concerncontroller / auditor
    email: d.smit@voorbeeld.example
    roles: {"*": auditor}
','2026-03-02 09:00:00.000000');
CREATE TABLE outbox (
	id INTEGER NOT NULL, 
	"key" VARCHAR(200) NOT NULL, 
	case_id INTEGER, 
	kind VARCHAR(32) NOT NULL, 
	language VARCHAR(8) NOT NULL, 
	recipient VARCHAR(64) NOT NULL, 
	to_email VARCHAR(320) NOT NULL, 
	to_name VARCHAR, 
	subject VARCHAR NOT NULL, 
	context JSON NOT NULL, 
	created_at DATETIME NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	next_attempt_at DATETIME, 
	lease_until DATETIME, 
	last_error VARCHAR, 
	sent_at DATETIME, lease_owner VARCHAR(32), 
	PRIMARY KEY (id), 
	FOREIGN KEY(case_id) REFERENCES cases (id), 
	UNIQUE ("key")
);
INSERT INTO "outbox" VALUES(1,'BI-2026-00001/e1/requester',1,'resident_created','nl','requester','g.zwanenburg@example.org','','Ontvangstbevestiging BI-2026-00001: Bewonersinitiatief (wijkbudget)','{"municipality": "Gemeente Voorbeeld", "ref": "BI-2026-00001", "case_id": 1, "event_seq": 1, "event": "created", "audience": "resident", "type_title": "Bewonersinitiatief (wijkbudget)", "summary": [["Naam van het initiatief", "Straatfeest Lindelaan"]], "state_label": "Ingediend", "unit_name": "Wijkteam Noord", "unit_email": "wijkteam.noord@voorbeeld.example", "decision_due": "2026-04-28T21:59:59.000000Z"}','2026-03-02 09:00:00.000000','pending',0,'2026-03-02 09:00:00.000000',NULL,NULL,NULL,NULL);
INSERT INTO "outbox" VALUES(2,'BI-2026-00001/e3/requester',1,'resident_suspended','nl','requester','g.zwanenburg@example.org','','Behandeling opgeschort BI-2026-00001: Bewonersinitiatief (wijkbudget)','{"municipality": "Gemeente Voorbeeld", "ref": "BI-2026-00001", "case_id": 1, "event_seq": 3, "event": "suspended", "audience": "resident", "type_title": "Bewonersinitiatief (wijkbudget)", "summary": [["Naam van het initiatief", "Straatfeest Lindelaan"]], "state_label": "Ingediend", "unit_name": "Wijkteam Noord", "unit_email": "wijkteam.noord@voorbeeld.example", "reason": "Wachten op brief van Jan Klaassen", "decision_due": "2026-04-28T21:59:59.000000Z"}','2026-03-02 11:00:00.000000','pending',0,'2026-03-02 11:00:00.000000',NULL,NULL,NULL,NULL);
CREATE TABLE ref_counter (
	prefix VARCHAR(8) NOT NULL, 
	year INTEGER NOT NULL, 
	last INTEGER NOT NULL, 
	PRIMARY KEY (prefix, year)
);
INSERT INTO "ref_counter" VALUES('BI',2026,1);
CREATE TABLE request_type (
	id INTEGER NOT NULL, 
	"key" VARCHAR(64) NOT NULL, 
	version INTEGER NOT NULL, 
	title VARCHAR NOT NULL, 
	prefix VARCHAR(8) NOT NULL, 
	digest VARCHAR(64) NOT NULL, 
	definition JSON NOT NULL, 
	source VARCHAR NOT NULL, 
	loaded_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE ("key", version)
);
INSERT INTO "request_type" VALUES(1,'bewonersinitiatief',1,'Bewonersinitiatief (wijkbudget)','BI','839dda3ab2895c6fc2bf068065f358f268133fb8a14e448c9f8615e53b75d1c4','{"key": "bewonersinitiatief", "title": "Bewonersinitiatief (wijkbudget)", "prefix": "BI", "portfolio": "wijken", "responsible": "wijkteam", "lead_time": {"weeks": 8}, "service_norm": {"weeks": 4}, "max_extension": {"weeks": 6}, "fields": {"title": {"type": "text", "required": true, "label": "Naam van het initiatief"}, "description": {"type": "text", "label": "Omschrijving"}, "amount": {"type": "decimal", "min": 0, "label": "Gevraagd bedrag (EUR)"}, "name": {"type": "text", "personal": true, "label": "Naam aanvrager"}, "email": {"type": "email", "personal": true, "label": "E-mailadres aanvrager"}, "address": {"type": "text", "personal": true, "label": "Adres aanvrager"}, "start_date": {"type": "date", "label": "Startdatum"}, "category": {"type": "choice", "options": ["straatfeest", "groen", "spelen", "ontmoeting", "overig"], "label": "Categorie"}, "participants": {"type": "integer", "min": 1, "label": "Aantal deelnemers"}}, "initial": "ingediend", "contact": "email", "summary": ["title", "category", "amount"], "notify": [{"on": "handed_over", "to": "unit"}, {"on": "assigned", "to": "assignee"}, {"on": {"state": "besluit"}, "to": "head"}], "states": {"ingediend": {"label": "Ingediend", "owner": "wijkteam", "deadline": {"working_days": 5}}, "beoordeling": {"label": "In beoordeling", "owner": "wijkteam", "deadline": {"working_days": 10}}, "bijdrage": {"label": "Bijdrage openbare ruimte", "owner": "openbare_ruimte", "deadline": {"working_days": 10}, "timeout": {"after": {"working_days": 12}, "trigger": "geen_reactie_openbare_ruimte"}}, "wacht_op_bewoner": {"label": "Wacht op bewoner", "owner": "wijkteam", "clock": "paused"}, "besluit": {"label": "Besluit", "owner": "wijkteam", "deadline": {"calendar_days": 7}}, "toegekend": {"label": "Toegekend", "final": true}, "afgewezen": {"label": "Afgewezen", "final": true}, "ingetrokken": {"label": "Ingetrokken door bewoner", "final": true}, "buiten_behandeling": {"label": "Buiten behandeling gesteld", "final": true}}, "transitions": [{"trigger": "in_behandeling", "from": "ingediend", "to": "beoordeling"}, {"trigger": "vraag_informatie", "from": ["ingediend", "beoordeling", "besluit"], "to": "wacht_op_bewoner", "comment": "required"}, {"trigger": "informatie_ontvangen", "from": "wacht_op_bewoner", "to": "beoordeling"}, {"trigger": "buiten_behandeling_stellen", "from": "wacht_op_bewoner", "to": "buiten_behandeling", "roles": ["lead"], "comment": "required"}, {"trigger": "vraag_bijdrage", "from": "beoordeling", "to": "bijdrage", "requires": ["amount"]}, {"trigger": "bijdrage_geleverd", "from": "bijdrage", "to": "besluit"}, {"trigger": "bijdrage_niet_mogelijk", "from": "bijdrage", "to": "beoordeling", "comment": "required"}, {"trigger": "geen_reactie_openbare_ruimte", "from": "bijdrage", "to": "beoordeling"}, {"trigger": "naar_besluit", "from": "beoordeling", "to": "besluit", "requires": ["amount"]}, {"trigger": "toekennen", "from": "besluit", "to": "toegekend", "roles": ["lead"], "when": {"amount": {"lte": 5000}}}, {"trigger": "toekennen_groot", "from": "besluit", "to": "toegekend", "roles": ["head"], "when": {"amount": {"gt": 5000}}}, {"trigger": "afwijzen", "from": ["beoordeling", "besluit"], "to": "afgewezen", "roles": ["lead"], "comment": "required"}, {"trigger": "heroverwegen", "from": "besluit", "to": "beoordeling", "comment": "required"}, {"trigger": "intrekken", "from": ["ingediend", "beoordeling", "bijdrage", "wacht_op_bewoner", "besluit"], "to": "ingetrokken", "comment": "required"}], "escalation": [{"before": {"working_days": 2}, "to": "assignee"}, {"after": {"working_days": 0}, "to": "lead"}, {"after": {"working_days": 5}, "to": "head"}, {"after": {"working_days": 10}, "to": "administrator"}]}','# Bewonersinitiatief: bewoners vragen een bijdrage uit het wijkbudget voor een
# straatfeest, een buurtmoestuin, een speelplek of een ontmoetingsplek.
#
# Route:  ingediend -> beoordeling -> (bijdrage openbare ruimte) -> besluit
#         -> toegekend | afgewezen
#         wacht_op_bewoner: opschorting (Awb 4:15), de klok staat stil
#         ingetrokken:      de bewoner trekt de aanvraag in
#         buiten_behandeling: de bewoner vult de aanvraag niet aan (Awb 4:5)
#
# Mandaat: de teamleider besluit tot en met EUR 5.000, daarboven het afdelingshoofd.

key: bewonersinitiatief
title: Bewonersinitiatief (wijkbudget)
prefix: BI
portfolio: wijken
responsible: wijkteam          # staat in voor de beslistermijn, ook als een ander de zaak heeft
lead_time: {weeks: 8}          # beslistermijn (Awb 4:13)
service_norm: {weeks: 4}       # eigen belofte van de gemeente
max_extension: {weeks: 6}      # verdaging (Awb 4:14)

fields:
  title:        {type: text, required: true, label: Naam van het initiatief}
  description:  {type: text, label: Omschrijving}
  amount:       {type: decimal, min: 0, label: Gevraagd bedrag (EUR)}
  name:         {type: text, personal: true, label: Naam aanvrager}
  email:        {type: email, personal: true, label: E-mailadres aanvrager}
  address:      {type: text, personal: true, label: Adres aanvrager}
  start_date:   {type: date, label: Startdatum}
  category:     {type: choice, options: [straatfeest, groen, spelen, ontmoeting, overig], label: Categorie}
  participants: {type: integer, min: 1, label: Aantal deelnemers}

initial: ingediend

# Wie wat hoort. De aanvrager (het veld onder contact) krijgt zonder regel een
# ontvangstbevestiging met de beslisdatum, en bericht bij verdaging, opschorting, hervatting en
# afhandeling. De toelichting bij een stap naar een toestand met clock: paused (vraag_informatie)
# is wat de bewoner te lezen krijgt: schrijf haar voor de bewoner.
contact: email
summary: [title, category, amount]
notify:
  - {on: handed_over, to: unit}          # Openbare Ruimte bij een vraag om bijdrage, het wijkteam bij terugkeer
  - {on: assigned, to: assignee}         # iemand anders wijst je de zaak toe
  - {on: {state: besluit}, to: head}     # het afdelingshoofd ziet welke aanvragen op een besluit wachten

states:
  ingediend:          {label: Ingediend, owner: wijkteam, deadline: {working_days: 5}}
  beoordeling:        {label: In beoordeling, owner: wijkteam, deadline: {working_days: 10}}
  # Openbare Ruimte beoordeelt de plek (vergunning, groenbeheer, veiligheid).
  # Antwoordt zij niet, dan gaat de zaak 12 werkdagen na de termijn vanzelf terug
  # naar het wijkteam -- na de wethouder (sport 4, +10 werkdagen), zodat die het
  # eerst te horen krijgt en het wijkteam daarna zonder bijdrage kan besluiten.
  bijdrage:           {label: Bijdrage openbare ruimte, owner: openbare_ruimte, deadline: {working_days: 10},
                       timeout: {after: {working_days: 12}, trigger: geen_reactie_openbare_ruimte}}
  wacht_op_bewoner:   {label: Wacht op bewoner, owner: wijkteam, clock: paused}
  besluit:            {label: Besluit, owner: wijkteam, deadline: {calendar_days: 7}}
  toegekend:          {label: Toegekend, final: true}
  afgewezen:          {label: Afgewezen, final: true}
  ingetrokken:        {label: Ingetrokken door bewoner, final: true}
  buiten_behandeling: {label: Buiten behandeling gesteld, final: true}

transitions:
  # Ontvangst en beoordeling
  - {trigger: in_behandeling, from: ingediend, to: beoordeling}
  - {trigger: vraag_informatie, from: [ingediend, beoordeling, besluit], to: wacht_op_bewoner, comment: required}
  # Na aanvulling altijd terug naar beoordeling, ook als het verzoek uit "besluit" kwam:
  # de nieuwe gegevens kunnen het bedrag, en daarmee het mandaat, veranderen.
  - {trigger: informatie_ontvangen, from: wacht_op_bewoner, to: beoordeling}
  # Awb 4:5: de aanvrager vult niet aan binnen de gestelde termijn.
  - {trigger: buiten_behandeling_stellen, from: wacht_op_bewoner, to: buiten_behandeling, roles: [lead], comment: required}

  # Bijdrage van Openbare Ruimte
  - {trigger: vraag_bijdrage, from: beoordeling, to: bijdrage, requires: [amount]}
  - {trigger: bijdrage_geleverd, from: bijdrage, to: besluit}
  # Openbare Ruimte kan (nog) niet bijdragen; het wijkteam heroverweegt.
  - {trigger: bijdrage_niet_mogelijk, from: bijdrage, to: beoordeling, comment: required}
  # Afgevuurd door de sweep (actor "system") wanneer de timeout van "bijdrage" verloopt.
  - {trigger: geen_reactie_openbare_ruimte, from: bijdrage, to: beoordeling}

  # Besluit: mandaat van de teamleider tot en met 5000, daarboven het afdelingshoofd.
  # (head omvat lead, dus het hoofd mag ook kleine aanvragen toekennen.)
  - {trigger: naar_besluit, from: beoordeling, to: besluit, requires: [amount]}
  - {trigger: toekennen, from: besluit, to: toegekend, roles: [lead], when: {amount: {lte: 5000}}}
  - {trigger: toekennen_groot, from: besluit, to: toegekend, roles: [head], when: {amount: {gt: 5000}}}
  - {trigger: afwijzen, from: [beoordeling, besluit], to: afgewezen, roles: [lead], comment: required}
  # Terug naar beoordeling, bijvoorbeeld als het bedrag moet worden bijgesteld.
  - {trigger: heroverwegen, from: besluit, to: beoordeling, comment: required}

  # De bewoner trekt de aanvraag in. Geregistreerd door de eenheid die de zaak
  # op dat moment heeft -- ook Openbare Ruimte tijdens "bijdrage".
  - {trigger: intrekken, from: [ingediend, beoordeling, bijdrage, wacht_op_bewoner, besluit], to: ingetrokken, comment: required}

escalation:                    # geteld vanaf de termijn van de toestand
  - {before: {working_days: 2}, to: assignee}     # herinnering, er is nog tijd
  - {after: {working_days: 0}, to: lead}
  - {after: {working_days: 5}, to: head}
  - {after: {working_days: 10}, to: administrator}
','2026-03-02 09:00:00.000000');
INSERT INTO "request_type" VALUES(2,'bijdrage',1,'Verzoek om bijdrage van afdeling of partner','BD','c68ba53895ad6a6f453be3cbccf6e61a9f89dad08ff5b2c5753f0ad78dcb07bf','{"key": "bijdrage", "title": "Verzoek om bijdrage van afdeling of partner", "prefix": "BD", "portfolio": "wijken", "responsible": "wijkteam", "lead_time": {"weeks": 8}, "service_norm": {"weeks": 6}, "max_extension": {"weeks": 4}, "fields": {"title": {"type": "text", "required": true, "label": "Onderwerp"}, "description": {"type": "text", "label": "Omschrijving van het verzoek"}, "location": {"type": "text", "label": "Locatie (straat of buurt)"}, "requested": {"type": "text", "label": "Gevraagde bijdrage"}, "estimated_cost": {"type": "decimal", "min": 0, "label": "Geraamde kosten (EUR)"}, "wanted_by": {"type": "date", "label": "Gewenst per"}, "partner_response": {"type": "text", "label": "Antwoord van afdeling of partner"}, "agreement": {"type": "text", "label": "Gemaakte afspraak"}, "resident_name": {"type": "text", "personal": true, "label": "Naam bewoner"}, "resident_email": {"type": "email", "personal": true, "label": "E-mailadres bewoner"}, "resident_phone": {"type": "text", "personal": true, "label": "Telefoonnummer bewoner"}}, "initial": "ontvangen", "contact": "resident_email", "summary": ["title", "location", "requested"], "notify": [{"on": "handed_over", "to": "unit"}, {"on": "assigned", "to": "assignee"}], "states": {"ontvangen": {"label": "Ontvangen", "owner": "wijkteam", "deadline": {"working_days": 5}}, "voorbereiding": {"label": "Voorbereiding wijkteam", "owner": "wijkteam", "deadline": {"working_days": 10}}, "wacht_op_bewoner": {"label": "Wacht op bewoner", "owner": "wijkteam", "clock": "paused"}, "bij_openbare_ruimte": {"label": "Bij Openbare Ruimte", "owner": "openbare_ruimte", "deadline": {"working_days": 10}, "timeout": {"after": {"working_days": 12}, "trigger": "geen_reactie_openbare_ruimte"}}, "bij_welzijn": {"label": "Bij Welzijn en Zorg", "owner": "welzijn", "deadline": {"working_days": 10}, "timeout": {"after": {"working_days": 12}, "trigger": "geen_reactie_welzijn"}}, "bij_woningcorporatie": {"label": "Bij Woningcorporatie Thuis", "owner": "woningcorporatie", "deadline": {"working_days": 15}, "timeout": {"after": {"working_days": 10}, "trigger": "geen_reactie_woningcorporatie"}, "escalation": [{"before": {"working_days": 3}, "to": "assignee"}, {"after": {"working_days": 0}, "to": "lead"}, {"after": {"working_days": 3}, "to": "head"}, {"after": {"working_days": 5}, "to": "a.jansen"}, {"after": {"working_days": 8}, "to": "administrator"}]}, "bij_politie": {"label": "Bij Politie Basisteam", "owner": "politie", "deadline": {"working_days": 10}, "timeout": {"after": {"working_days": 10}, "trigger": "geen_reactie_politie"}, "escalation": [{"before": {"working_days": 2}, "to": "assignee"}, {"after": {"working_days": 0}, "to": "lead"}, {"after": {"working_days": 3}, "to": "head"}, {"after": {"working_days": 5}, "to": "a.jansen"}, {"after": {"working_days": 8}, "to": "administrator"}]}, "bij_welzijnsorganisatie": {"label": "Bij Stichting Welzijn Voorbeeld", "owner": "welzijnsorganisatie", "deadline": {"working_days": 10}, "timeout": {"after": {"working_days": 10}, "trigger": "geen_reactie_welzijnsorganisatie"}, "escalation": [{"before": {"working_days": 2}, "to": "assignee"}, {"after": {"working_days": 0}, "to": "lead"}, {"after": {"working_days": 3}, "to": "head"}, {"after": {"working_days": 5}, "to": "a.jansen"}, {"after": {"working_days": 8}, "to": "administrator"}]}, "terugkoppeling": {"label": "Terugkoppeling aan bewoner", "owner": "wijkteam", "deadline": {"working_days": 5}}, "afgerond": {"label": "Afgerond", "final": true}, "afgewezen": {"label": "Afgewezen", "final": true}}, "transitions": [{"trigger": "in_behandeling", "from": "ontvangen", "to": "voorbereiding"}, {"trigger": "vraag_informatie", "from": ["ontvangen", "voorbereiding"], "to": "wacht_op_bewoner", "comment": "required"}, {"trigger": "informatie_ontvangen", "from": "wacht_op_bewoner", "to": "voorbereiding"}, {"trigger": "buiten_behandeling_stellen", "from": "wacht_op_bewoner", "to": "afgewezen", "roles": ["lead"], "comment": "required"}, {"trigger": "vraag_openbare_ruimte", "from": "voorbereiding", "to": "bij_openbare_ruimte", "requires": ["requested"]}, {"trigger": "vraag_welzijn", "from": "voorbereiding", "to": "bij_welzijn", "requires": ["requested"]}, {"trigger": "vraag_woningcorporatie", "from": "voorbereiding", "to": "bij_woningcorporatie", "requires": ["requested"]}, {"trigger": "vraag_politie", "from": "voorbereiding", "to": "bij_politie", "requires": ["requested"]}, {"trigger": "vraag_welzijnsorganisatie", "from": "voorbereiding", "to": "bij_welzijnsorganisatie", "requires": ["requested"]}, {"trigger": "bijdrage_toegezegd", "from": ["bij_openbare_ruimte", "bij_welzijn", "bij_woningcorporatie", "bij_politie", "bij_welzijnsorganisatie"], "to": "terugkoppeling", "requires": ["partner_response"]}, {"trigger": "bijdrage_geweigerd", "from": ["bij_openbare_ruimte", "bij_welzijn", "bij_woningcorporatie", "bij_politie", "bij_welzijnsorganisatie"], "to": "voorbereiding", "comment": "required"}, {"trigger": "geen_reactie_openbare_ruimte", "from": "bij_openbare_ruimte", "to": "voorbereiding"}, {"trigger": "geen_reactie_welzijn", "from": "bij_welzijn", "to": "voorbereiding"}, {"trigger": "geen_reactie_woningcorporatie", "from": "bij_woningcorporatie", "to": "voorbereiding"}, {"trigger": "geen_reactie_politie", "from": "bij_politie", "to": "voorbereiding"}, {"trigger": "geen_reactie_welzijnsorganisatie", "from": "bij_welzijnsorganisatie", "to": "voorbereiding"}, {"trigger": "meer_bijdragen_nodig", "from": "terugkoppeling", "to": "voorbereiding", "comment": "required"}, {"trigger": "afronden", "from": "terugkoppeling", "to": "afgerond", "requires": ["agreement"]}, {"trigger": "afwijzen", "from": ["ontvangen", "voorbereiding"], "to": "afgewezen", "roles": ["lead"], "comment": "required"}], "escalation": [{"before": {"working_days": 2}, "to": "assignee"}, {"after": {"working_days": 0}, "to": "lead"}, {"after": {"working_days": 5}, "to": "head"}, {"after": {"working_days": 10}, "to": "administrator"}]}','# Verzoek om bijdrage: een bewonersverzoek dat alleen lukt als een andere afdeling
# of een partner meewerkt -- de woningcorporatie (achterpaden, portiekverlichting,
# groen rond flats), de politie (extra surveillance, buurtpreventie), Welzijn en
# Zorg of het opbouwwerk (buurtactiviteiten, ondersteuning van kwetsbare bewoners).
#
# Toestanden hebben vaste eigenaren, dus de partner is geen veld maar een toestand:
# per afdeling/partner een eigen "bij_..."-toestand met een eigen termijn. Wie niet
# antwoordt, krijgt de zaak vanzelf teruggestuurd naar het wijkteam (timeout), dat
# dan een andere partner kan vragen, opnieuw kan vragen of kan afwijzen.
#
# Route:  ontvangen -> voorbereiding -> bij_<partner> -> terugkoppeling -> afgerond
#         voorbereiding -> afgewezen
#         wacht_op_bewoner: opschorting, de klok staat stil

key: bijdrage
title: Verzoek om bijdrage van afdeling of partner
prefix: BD
portfolio: wijken
responsible: wijkteam          # staat in voor de beslistermijn, ook als een ander de zaak heeft
lead_time: {weeks: 8}
service_norm: {weeks: 6}
max_extension: {weeks: 4}

fields:
  title:              {type: text, required: true, label: Onderwerp}
  description:        {type: text, label: Omschrijving van het verzoek}
  location:           {type: text, label: Locatie (straat of buurt)}
  requested:          {type: text, label: Gevraagde bijdrage}
  estimated_cost:     {type: decimal, min: 0, label: Geraamde kosten (EUR)}
  wanted_by:          {type: date, label: Gewenst per}
  partner_response:   {type: text, label: Antwoord van afdeling of partner}
  agreement:          {type: text, label: Gemaakte afspraak}
  resident_name:      {type: text, personal: true, label: Naam bewoner}
  resident_email:     {type: email, personal: true, label: E-mailadres bewoner}
  resident_phone:     {type: text, personal: true, label: Telefoonnummer bewoner}

initial: ontvangen

# Wie wat hoort. De aanvrager (het veld onder contact) krijgt zonder regel een
# ontvangstbevestiging met de beslisdatum, en bericht bij verdaging, opschorting, hervatting en
# afhandeling. De toelichting bij een stap naar een toestand met clock: paused (vraag_informatie)
# is wat de bewoner te lezen krijgt: schrijf haar voor de bewoner.
contact: resident_email
summary: [title, location, requested]
notify:
  - {on: handed_over, to: unit}          # de afdeling of partner die de vraag krijgt, en het wijkteam bij terugkeer
  - {on: assigned, to: assignee}

states:
  ontvangen:        {label: Ontvangen, owner: wijkteam, deadline: {working_days: 5}}
  voorbereiding:    {label: Voorbereiding wijkteam, owner: wijkteam, deadline: {working_days: 10}}
  wacht_op_bewoner: {label: Wacht op bewoner, owner: wijkteam, clock: paused}

  # Gemeentelijke afdelingen: de ladder van het type (onderaan) geldt.
  bij_openbare_ruimte: {label: Bij Openbare Ruimte, owner: openbare_ruimte, deadline: {working_days: 10},
                        timeout: {after: {working_days: 12}, trigger: geen_reactie_openbare_ruimte}}
  bij_welzijn:         {label: Bij Welzijn en Zorg, owner: welzijn, deadline: {working_days: 10},
                        timeout: {after: {working_days: 12}, trigger: geen_reactie_welzijn}}

  # Partners: een eigen, snellere ladder (vervangt die van het type). Na de eigen
  # leiding hoort het afdelingshoofd van het wijkteam (a.jansen, die de regie
  # voert) het, dan de wethouder; daarna (timeout) gaat de zaak terug.
  # Politie en Stichting Welzijn hebben geen head: die sport schuift door naar
  # de wethouder Wijken (vacatureregel).
  bij_woningcorporatie:
    label: Bij Woningcorporatie Thuis
    owner: woningcorporatie
    deadline: {working_days: 15}     # prestatieafspraken: drie weken
    timeout: {after: {working_days: 10}, trigger: geen_reactie_woningcorporatie}
    escalation:
      - {before: {working_days: 3}, to: assignee}
      - {after: {working_days: 0}, to: lead}
      - {after: {working_days: 3}, to: head}
      - {after: {working_days: 5}, to: a.jansen}
      - {after: {working_days: 8}, to: administrator}
  bij_politie:
    label: Bij Politie Basisteam
    owner: politie
    deadline: {working_days: 10}
    timeout: {after: {working_days: 10}, trigger: geen_reactie_politie}
    escalation:
      - {before: {working_days: 2}, to: assignee}
      - {after: {working_days: 0}, to: lead}
      - {after: {working_days: 3}, to: head}          # vacant -> wethouder Wijken
      - {after: {working_days: 5}, to: a.jansen}
      - {after: {working_days: 8}, to: administrator}
  bij_welzijnsorganisatie:
    label: Bij Stichting Welzijn Voorbeeld
    owner: welzijnsorganisatie
    deadline: {working_days: 10}
    timeout: {after: {working_days: 10}, trigger: geen_reactie_welzijnsorganisatie}
    escalation:
      - {before: {working_days: 2}, to: assignee}
      - {after: {working_days: 0}, to: lead}
      - {after: {working_days: 3}, to: head}          # vacant -> wethouder Wijken
      - {after: {working_days: 5}, to: a.jansen}
      - {after: {working_days: 8}, to: administrator}

  terugkoppeling:   {label: Terugkoppeling aan bewoner, owner: wijkteam, deadline: {working_days: 5}}
  afgerond:         {label: Afgerond, final: true}
  afgewezen:        {label: Afgewezen, final: true}

transitions:
  - {trigger: in_behandeling, from: ontvangen, to: voorbereiding}
  - {trigger: vraag_informatie, from: [ontvangen, voorbereiding], to: wacht_op_bewoner, comment: required}
  - {trigger: informatie_ontvangen, from: wacht_op_bewoner, to: voorbereiding}
  # De bewoner reageert niet meer op de vraag om aanvulling.
  - {trigger: buiten_behandeling_stellen, from: wacht_op_bewoner, to: afgewezen, roles: [lead], comment: required}

  # Het wijkteam legt de vraag neer bij precies één afdeling of partner.
  - {trigger: vraag_openbare_ruimte,     from: voorbereiding, to: bij_openbare_ruimte,     requires: [requested]}
  - {trigger: vraag_welzijn,             from: voorbereiding, to: bij_welzijn,             requires: [requested]}
  - {trigger: vraag_woningcorporatie,    from: voorbereiding, to: bij_woningcorporatie,    requires: [requested]}
  - {trigger: vraag_politie,             from: voorbereiding, to: bij_politie,             requires: [requested]}
  - {trigger: vraag_welzijnsorganisatie, from: voorbereiding, to: bij_welzijnsorganisatie, requires: [requested]}

  # Antwoord van de afdeling of partner (gevuurd door hun eigen medewerkers).
  - {trigger: bijdrage_toegezegd, from: [bij_openbare_ruimte, bij_welzijn, bij_woningcorporatie, bij_politie, bij_welzijnsorganisatie],
     to: terugkoppeling, requires: [partner_response]}
  - {trigger: bijdrage_geweigerd, from: [bij_openbare_ruimte, bij_welzijn, bij_woningcorporatie, bij_politie, bij_welzijnsorganisatie],
     to: voorbereiding, comment: required}

  # Geen reactie: de sweep vuurt deze zelf af (actor "system") zodra de timeout verloopt.
  - {trigger: geen_reactie_openbare_ruimte,     from: bij_openbare_ruimte,     to: voorbereiding}
  - {trigger: geen_reactie_welzijn,             from: bij_welzijn,             to: voorbereiding}
  - {trigger: geen_reactie_woningcorporatie,    from: bij_woningcorporatie,    to: voorbereiding}
  - {trigger: geen_reactie_politie,             from: bij_politie,             to: voorbereiding}
  - {trigger: geen_reactie_welzijnsorganisatie, from: bij_welzijnsorganisatie, to: voorbereiding}

  # Na een toezegging: nog een tweede partner nodig? Dan terug naar voorbereiding.
  - {trigger: meer_bijdragen_nodig, from: terugkoppeling, to: voorbereiding, comment: required}
  - {trigger: afronden, from: terugkoppeling, to: afgerond, requires: [agreement]}

  # Afwijzen is aan de teamleider van het wijkteam, met motivering.
  - {trigger: afwijzen, from: [ontvangen, voorbereiding], to: afgewezen, roles: [lead], comment: required}

escalation:                    # voor de toestanden zonder eigen ladder
  - {before: {working_days: 2}, to: assignee}
  - {after: {working_days: 0}, to: lead}
  - {after: {working_days: 5}, to: head}
  - {after: {working_days: 10}, to: administrator}
','2026-03-02 09:00:00.000000');
INSERT INTO "request_type" VALUES(3,'melding',1,'Melding openbare ruimte','ME','bbfbb758e615ba3627b053e3876046b912f0cfcfa2385769747a899dc5c7ba7d','{"key": "melding", "title": "Melding openbare ruimte", "prefix": "ME", "portfolio": "openbare_ruimte", "service_norm": {"working_days": 5}, "fields": {"omschrijving": {"type": "text", "required": true, "label": "Omschrijving"}, "locatie": {"type": "text", "required": true, "label": "Locatie"}, "categorie": {"type": "choice", "label": "Categorie", "options": ["verlichting", "zwerfvuil", "bestrating", "groen", "speelvoorziening", "riolering", "overlast", "vandalisme", "overig"]}, "foto_url": {"type": "text", "label": "Foto (link)"}, "spoed": {"type": "boolean", "label": "Spoed (gevaarlijke situatie)"}, "melder_naam": {"type": "text", "personal": true, "label": "Naam melder"}, "melder_email": {"type": "email", "personal": true, "label": "E-mailadres melder"}, "melder_telefoon": {"type": "text", "personal": true, "label": "Telefoonnummer melder"}, "terugmelding": {"type": "text", "label": "Terugmelding aan melder"}}, "initial": "ontvangen", "contact": "melder_email", "summary": ["categorie", "locatie"], "notify": [{"on": "handed_over", "to": "unit"}, {"on": "assigned", "to": "assignee"}, {"on": {"state": "spoed"}, "to": ["unit", "lead"]}, {"on": "resumed", "to": "requester", "enabled": false}], "states": {"ontvangen": {"label": "Ontvangen (triage)", "owner": "wijkteam", "deadline": {"working_days": 1}}, "wacht_op_melder": {"label": "Wacht op melder", "owner": "wijkteam", "clock": "paused"}, "in_behandeling": {"label": "In behandeling", "owner": "openbare_ruimte", "deadline": {"working_days": 4}}, "spoed": {"label": "Spoed", "owner": "openbare_ruimte", "deadline": {"hours": 4}, "escalation": [{"after": {"hours": 0}, "to": "lead"}, {"after": {"hours": 4}, "to": "head"}, {"after": {"working_days": 1}, "to": "administrator"}]}, "doorgestuurd": {"label": "Doorgestuurd naar politie", "owner": "politie", "deadline": {"working_days": 5}, "timeout": {"after": {"working_days": 5}, "trigger": "geen_reactie_politie"}}, "afgehandeld": {"label": "Afgehandeld", "final": true}, "niet_in_behandeling": {"label": "Niet in behandeling genomen", "final": true}}, "transitions": [{"trigger": "doorzetten", "from": "ontvangen", "to": "in_behandeling", "requires": ["categorie"]}, {"trigger": "doorzetten_spoed", "from": "ontvangen", "to": "spoed", "when": {"spoed": {"eq": true}}}, {"trigger": "doorsturen_politie", "from": "ontvangen", "to": "doorgestuurd", "when": {"categorie": {"in": ["overlast", "vandalisme"]}}}, {"trigger": "vraag_melder", "from": "ontvangen", "to": "wacht_op_melder", "comment": "required"}, {"trigger": "informatie_ontvangen", "from": "wacht_op_melder", "to": "ontvangen"}, {"trigger": "niet_in_behandeling_nemen", "from": ["ontvangen", "wacht_op_melder", "in_behandeling"], "to": "niet_in_behandeling", "comment": "required"}, {"trigger": "afhandelen", "from": ["in_behandeling", "spoed"], "to": "afgehandeld", "requires": ["terugmelding"]}, {"trigger": "terug_naar_triage", "from": ["in_behandeling", "spoed"], "to": "ontvangen", "comment": "required"}, {"trigger": "geen_spoed", "from": "spoed", "to": "in_behandeling", "comment": "required"}, {"trigger": "afgehandeld_door_politie", "from": "doorgestuurd", "to": "afgehandeld", "requires": ["terugmelding"]}, {"trigger": "herstel_openbare_ruimte", "from": "doorgestuurd", "to": "in_behandeling", "comment": "required"}, {"trigger": "terug_naar_triage", "from": "doorgestuurd", "to": "ontvangen", "comment": "required"}, {"trigger": "geen_reactie_politie", "from": "doorgestuurd", "to": "ontvangen"}], "escalation": [{"after": {"working_days": 0}, "to": "lead"}, {"after": {"working_days": 2}, "to": "head"}, {"after": {"working_days": 5}, "to": "administrator"}]}','# Melding openbare ruimte (MOR): een kapotte lantaarnpaal, zwerfvuil, een
# losliggende stoeptegel, een omgewaaide boom, overlast.
#
# Route:  ontvangen (triage wijkteam) -> in_behandeling (Openbare Ruimte) -> afgehandeld
#         ontvangen -> spoed (Openbare Ruimte, termijn in uren) -> afgehandeld
#         ontvangen -> doorgestuurd (Politie, bij overlast/vandalisme) -> afgehandeld
#         niet_in_behandeling: geen gemeentelijke taak, dubbele melding, ...
#
# Een melding is geen aanvraag om een besluit: er is geen beslistermijn, alleen
# de servicenorm van vijf werkdagen.

key: melding
title: Melding openbare ruimte
prefix: ME
portfolio: openbare_ruimte
service_norm: {working_days: 5}

fields:
  omschrijving:   {type: text, required: true, label: Omschrijving}
  locatie:        {type: text, required: true, label: Locatie}
  categorie:      {type: choice, label: Categorie,
                   options: [verlichting, zwerfvuil, bestrating, groen, speelvoorziening, riolering, overlast, vandalisme, overig]}
  foto_url:       {type: text, label: Foto (link)}
  spoed:          {type: boolean, label: Spoed (gevaarlijke situatie)}
  melder_naam:    {type: text, personal: true, label: Naam melder}
  melder_email:   {type: email, personal: true, label: E-mailadres melder}
  melder_telefoon: {type: text, personal: true, label: Telefoonnummer melder}
  terugmelding:   {type: text, label: Terugmelding aan melder}

initial: ontvangen

# Wie wat hoort. De aanvrager (het veld onder contact) krijgt zonder regel een
# ontvangstbevestiging met de beslisdatum, en bericht bij verdaging, opschorting, hervatting en
# afhandeling. De toelichting bij een stap naar een toestand met clock: paused (vraag_melder)
# is wat de melder te lezen krijgt: schrijf haar voor de melder.
contact: melder_email
summary: [categorie, locatie]   # geen omschrijving: vrije tekst kan persoonsgegevens bevatten
notify:
  - {on: handed_over, to: unit}          # Openbare Ruimte of de politie
  - {on: assigned, to: assignee}
  - {on: {state: spoed}, to: [unit, lead]}   # gevaarlijke situatie: ook de teamleider direct
  # De melder geeft zelf de gevraagde informatie: een bericht dat de behandeling verder gaat is overbodig.
  - {on: resumed, to: requester, enabled: false}

states:
  ontvangen:       {label: Ontvangen (triage), owner: wijkteam, deadline: {working_days: 1}}
  wacht_op_melder: {label: Wacht op melder, owner: wijkteam, clock: paused}
  in_behandeling:  {label: In behandeling, owner: openbare_ruimte, deadline: {working_days: 4}}
  # Gevaarlijke situaties (loshangende lantaarnpaal, open put): binnen vier uur
  # ter plaatse, met een eigen ladder in uren die de gewone vervangt.
  spoed:
    label: Spoed
    owner: openbare_ruimte
    deadline: {hours: 4}
    escalation:
      - {after: {hours: 0}, to: lead}
      - {after: {hours: 4}, to: head}
      - {after: {working_days: 1}, to: administrator}
  # Overlast is aan de politie. Die heeft geen head: de sport "head" van de
  # ladder schuift door naar de wethouder Openbare Ruimte (vacatureregel).
  # Zonder reactie komt de melding vanzelf terug bij de triage van het wijkteam.
  doorgestuurd:    {label: Doorgestuurd naar politie, owner: politie, deadline: {working_days: 5},
                    timeout: {after: {working_days: 5}, trigger: geen_reactie_politie}}
  afgehandeld:         {label: Afgehandeld, final: true}
  niet_in_behandeling: {label: Niet in behandeling genomen, final: true}

transitions:
  # Triage door het wijkteam
  - {trigger: doorzetten, from: ontvangen, to: in_behandeling, requires: [categorie]}
  - {trigger: doorzetten_spoed, from: ontvangen, to: spoed, when: {spoed: {eq: true}}}
  - {trigger: doorsturen_politie, from: ontvangen, to: doorgestuurd, when: {categorie: {in: [overlast, vandalisme]}}}
  - {trigger: vraag_melder, from: ontvangen, to: wacht_op_melder, comment: required}
  - {trigger: informatie_ontvangen, from: wacht_op_melder, to: ontvangen}
  # Geen gemeentelijke taak, dubbele melding, of de melder reageert niet: altijd met motivering.
  - {trigger: niet_in_behandeling_nemen, from: [ontvangen, wacht_op_melder, in_behandeling], to: niet_in_behandeling, comment: required}

  # Openbare Ruimte
  - {trigger: afhandelen, from: [in_behandeling, spoed], to: afgehandeld, requires: [terugmelding]}
  # Verkeerd gerouteerd (bijv. het is particulier terrein of een zorgsignaal): terug naar triage.
  - {trigger: terug_naar_triage, from: [in_behandeling, spoed], to: ontvangen, comment: required}
  # Spoed blijkt na inspectie geen spoed: verder als gewone melding.
  - {trigger: geen_spoed, from: spoed, to: in_behandeling, comment: required}

  # Politie
  - {trigger: afgehandeld_door_politie, from: doorgestuurd, to: afgehandeld, requires: [terugmelding]}
  # Bij vandalisme herstelt Openbare Ruimte de schade nadat de politie klaar is.
  - {trigger: herstel_openbare_ruimte, from: doorgestuurd, to: in_behandeling, comment: required}
  - {trigger: terug_naar_triage, from: doorgestuurd, to: ontvangen, comment: required}
  # Afgevuurd door de sweep (actor "system") als de politie niet reageert.
  - {trigger: geen_reactie_politie, from: doorgestuurd, to: ontvangen}

escalation:
  - {after: {working_days: 0}, to: lead}
  - {after: {working_days: 2}, to: head}
  - {after: {working_days: 5}, to: administrator}
','2026-03-02 09:00:00.000000');
CREATE INDEX ix_cases_assignee ON cases (assignee);
CREATE INDEX ix_cases_closed_at ON cases (closed_at);
CREATE INDEX ix_cases_next_fire_at ON cases (next_fire_at);
CREATE INDEX ix_cases_owner ON cases (owner);
CREATE INDEX ix_cases_state ON cases (state);
CREATE INDEX ix_cases_state_due ON cases (state_due);
CREATE INDEX ix_cases_type_key ON cases (type_key);
CREATE INDEX ix_request_type_key ON request_type ("key");
CREATE INDEX ix_case_event_at ON case_event (at);
CREATE INDEX ix_case_event_case_id ON case_event (case_id);
CREATE INDEX ix_escalation_case_id ON escalation (case_id);
CREATE INDEX ix_escalation_fired_at ON escalation (fired_at);
CREATE INDEX ix_outbox_case_id ON outbox (case_id);
CREATE INDEX ix_outbox_next_attempt_at ON outbox (next_attempt_at);
CREATE INDEX ix_outbox_status ON outbox (status);
COMMIT;
