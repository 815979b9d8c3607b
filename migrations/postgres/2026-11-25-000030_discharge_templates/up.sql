-- Discharge task templates: the tasks a discharge-coordination case (入退院調整) is made of, and
-- the deadline rule each one follows. They are data, not code: a city adjusts, adds or retires
-- rows (active = FALSE) without a release.
-- Only types both backends share: TEXT, BOOLEAN, TIMESTAMP (UTC), DATE, INTEGER, BIGINT.

CREATE TABLE discharge_task_templates (
    key TEXT PRIMARY KEY,
    -- What a person reads: Japanese, with an English column for English-language clients.
    title TEXT NOT NULL,
    title_en TEXT NOT NULL,
    -- The profession the task is assigned to (src/vocab.rs Profession).
    profession TEXT NOT NULL,
    -- The date the clock starts from: admission, planned_discharge or discharge.
    anchor TEXT NOT NULL,
    -- Day N relative to the anchor day: 0 is the anchor day itself, negative is before it.
    offset_days INTEGER NOT NULL,
    -- end_of_day: by the end of day N; before_anchor: by the end of the day before day N.
    -- Days end at midnight Asia/Tokyo (src/discharge/deadlines.rs).
    due_rule TEXT NOT NULL,
    -- 入院時情報連携加算: an admission outside business hours moves the deadline to the next day.
    business_hours_rule BOOLEAN NOT NULL,
    -- The fee (加算, 指導料) or practice the deadline comes from.
    source TEXT NOT NULL,
    note TEXT,
    sort_order INTEGER NOT NULL,
    active BOOLEAN NOT NULL
);

-- One active row per line of the discharge-coordination table in docs/domain.md (2024 fee
-- revision). Where that table gives two deadlines for one task, the first is the active default
-- and the second is an inactive variant row a city or hospital can switch to.
--
-- "Within N days" of an anchor is read as "by the end of day N", the anchor day being day 0.
-- Hospital tasks go to social_worker (the MSW of the discharge-support team) so that they do not
-- land with the visiting nurse; a hospital whose discharge nurse does them changes the row.
INSERT INTO discharge_task_templates
    (key, title, title_en, profession, anchor, offset_days, due_rule, business_hours_rule, source, note, sort_order, active)
VALUES
    -- 入院時情報連携加算 (I): the same day as admission, or the next day when admitted outside
    -- business hours.
    ('admission_info', '入院時情報提供', 'Home-life information to the hospital on admission',
     'care_manager', 'admission', 0, 'end_of_day', TRUE,
     '入院時情報連携加算(I) (2024改定)',
     '加算(I): 入院日当日(営業時間外・営業日以外の入院は翌日)。加算(II)(翌日または翌々日)は admission_info_ii。',
     10, TRUE),
    -- 入院時情報連携加算 (II): the day after admission or the day after that.
    ('admission_info_ii', '入院時情報提供(加算II)', 'Home-life information to the hospital on admission (add-on II)',
     'care_manager', 'admission', 2, 'end_of_day', FALSE,
     '入院時情報連携加算(II) (2024改定)',
     '加算(II): 入院日の翌日または翌々日。既定は加算(I)の admission_info。',
     11, FALSE),
    -- 入退院支援加算1: screening within 3 days of admission. 加算2 has been 3 days too since the 2020
    -- revision (7 days before it): 2026-12-05-000100_discharge_task_roles_and_deadlines corrects its row.
    ('discharge_screening', '退院困難者スクリーニング', 'Screening for patients who will find discharge hard',
     'social_worker', 'admission', 3, 'end_of_day', FALSE,
     '入退院支援加算1',
     '入院後3日以内(加算1)。加算2を算定する病院は7日以内の discharge_screening_addon2 を使う。',
     20, TRUE),
    ('discharge_screening_addon2', '退院困難者スクリーニング(加算2)', 'Screening for patients who will find discharge hard (add-on 2)',
     'social_worker', 'admission', 7, 'end_of_day', FALSE,
     '入退院支援加算2',
     '入院後7日以内(加算2)。既定は加算1の discharge_screening。',
     21, FALSE),
    -- 入退院支援加算1: interview within 7 days (14 on long-term-care wards).
    ('patient_family_interview', '患者・家族面談', 'Interview with the patient and family',
     'social_worker', 'admission', 7, 'end_of_day', FALSE,
     '入退院支援加算1',
     '入院後7日以内。療養病棟等は14日以内の patient_family_interview_long_term_care を使う。',
     30, TRUE),
    ('patient_family_interview_long_term_care', '患者・家族面談(療養病棟等)', 'Interview with the patient and family (long-term-care ward)',
     'social_worker', 'admission', 14, 'end_of_day', FALSE,
     '入退院支援加算1',
     '療養病棟等: 入院後14日以内。',
     31, FALSE),
    -- 入退院支援加算1: multidisciplinary conference within 7 days.
    ('multidisciplinary_conference', '多職種カンファレンス', 'Multidisciplinary conference in hospital',
     'social_worker', 'admission', 7, 'end_of_day', FALSE,
     '入退院支援加算1',
     '入院後7日以内。',
     40, TRUE),
    -- 退院時共同指導料1/2: before discharge, with the home team.
    ('joint_discharge_conference', '退院前カンファレンス・退院時共同指導', 'Joint discharge conference with the home team',
     'social_worker', 'planned_discharge', 0, 'before_anchor', FALSE,
     '退院時共同指導料1/2',
     '在宅医・訪問看護師・ケアマネジャー・病院が参加。日時・場所・参加者・内容を記録する。',
     50, TRUE),
    -- 退院・退所加算: ideally before discharge; accepted up to 7 days after.
    ('discharge_info_collection', '退院・退所情報収集', 'Care manager collects discharge information',
     'care_manager', 'discharge', 7, 'end_of_day', FALSE,
     '退院・退所加算',
     '退院前が望ましい。退院後7日以内まで算定可。',
     60, TRUE),
    -- Practice: the care plan is ready before discharge.
    ('care_plan', 'ケアプラン作成・変更', 'Care plan ready for life at home',
     'care_manager', 'planned_discharge', 0, 'before_anchor', FALSE,
     '実務',
     NULL,
     70, TRUE),
    -- 訪問看護指示料: before the first visit. Home nursing starts at discharge, so the clock is
    -- the planned discharge date.
    ('home_nursing_order', '訪問看護指示書', 'Home physician''s visiting-nursing order',
     'physician', 'planned_discharge', 0, 'before_anchor', FALSE,
     '訪問看護指示料',
     '初回訪問の前まで(訪問看護の開始を退院日とみなす)。有効期間は最長6か月。',
     80, TRUE),
    -- 特別訪問看護指示加算: only when needed (acute exacerbation, terminal care, right after
    -- discharge); due with the ordinary order.
    ('special_home_nursing_order', '特別訪問看護指示書', 'Special visiting-nursing order',
     'physician', 'planned_discharge', 0, 'before_anchor', FALSE,
     '特別訪問看護指示加算',
     '急性増悪・終末期・退院直後など必要な場合のみ(不要なら取消)。診察日から最長14日有効。月1回(気管カニューレ・真皮を越える褥瘡は月2回)。毎日の訪問が可能になる。',
     90, TRUE),
    -- Practice: medication reconciliation before discharge.
    ('medication_reconciliation', '服薬調整・薬剤情報提供', 'Medication reconciliation for home',
     'pharmacist', 'planned_discharge', 0, 'before_anchor', FALSE,
     '実務',
     NULL,
     100, TRUE),
    -- Practice: equipment and home adaptation ready before discharge.
    ('equipment_home_adaptation', '福祉用具・住宅改修', 'Equipment and home adaptation ready',
     'care_manager', 'planned_discharge', 0, 'before_anchor', FALSE,
     '実務',
     NULL,
     110, TRUE),
    -- Practice: first home visit within 1–2 days of discharge; the deadline is the later day.
    ('first_home_visit', '退院後初回訪問', 'First home visit after discharge',
     'nurse', 'discharge', 2, 'end_of_day', FALSE,
     '実務',
     '退院後1〜2日以内(翌日が目安)。訪問看護師または在宅医。',
     120, TRUE);
