"""Synthetic cases and tracing requests with known truth, for the matching benchmark.

    python bench/matching_data.py --cases 1000 --traces 1000 --seed 1 --output /tmp/bench-data
    python bench/matching_data.py --cases 1000 --traces 1000 --seed 1 --stats

Each run is deterministic for (--seed, --cases, --traces): the same arguments give
byte-identical files, whatever PYTHONHASHSEED is. Records are plain dicts keyed by the
field keys of the default form configuration (forms/config/default_config.json), so
they load through the app's real operations or through bulk inserts of the same shape
(bench/matching_eval.py does the latter).

What is simulated
-----------------
Children (the truth) belong to families from ten naming traditions (Somali, Syrian
Arabic, Sudanese/Chadian Arabic, Afghan Dari/Pashto, Kurdish, South Sudanese
Nuer/Dinka, Eritrean Tigrinya, Congolese, Swahili, Hausa), with skewed name frequencies
(a Somali boy is Mohamed about one time in six), chain names (given + father +
grandfather), family names where the tradition has them, siblings who share parents,
chain and place, twins, and cousins who share the grandfather. A caseworker registers
some of the children (a *case*); a relative files a *tracing request* for some of them
(one *trace* per child sought), possibly for a child who was never registered. The two
sides are written independently by different people, in different countries and
spelling conventions, and the trace carries the corruptions listed in ``TAGS``.

Independence from the engine
----------------------------
The spelling variants, short forms and Arabic/Ge'ez-script forms below were written for
this generator from general knowledge of the naming traditions. They do NOT come from
matching/data/ (the engine's curated tables) and nothing here reads those tables: an
engine must not be tested on its own lists. Many spellings inevitably coincide with the
engine's table (Mohamed / Muhammad are in every list); ``variant_overlap()`` measures
how many of the generator's variant pairs the engine's table already knows, and
bench/matching_eval.py prints it so a reader can judge.

Output (``--output DIR``)
-------------------------
``locations.csv`` (demo_locations.csv format: the demo places plus a generated
country > region > district > camp hierarchy), ``cases.jsonl`` (``source_id``,
``registered_on`` = the case's registration date, ``data``),
``tracing_requests.jsonl`` (``source_id``, ``data``, ``traces``: [{``source_id``,
``data``}]), ``truth.jsonl`` (``trace`` source id, ``case`` source id or null,
``tags``) and ``summary.json`` (counts and the share of each tag).
"""
from __future__ import annotations

import argparse
import bisect
import csv
import datetime as dt
import io
import itertools
import json
import random
import sys
import unicodedata
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = ROOT / "forms" / "config" / "default_config.json"
DEMO_LOCATIONS = ROOT / "forms" / "config" / "demo_locations.csv"

# Every date is on or before this day (so no date is in the future for the forms'
# "no future dates" rule) and separations start in 2019.
AS_OF = dt.date(2026, 6, 30)
FIRST_SEPARATION = dt.date(2019, 1, 1)

# Hard-case tags carried by the truth of each trace. A trace has several.
TAGS = {
    # differences between the case and the trace of the same child
    "variant_spelling": "a name part is spelled differently (transliteration variant)",
    "compound_split": "a compound name written joined on one side, split on the other (Abdul Rahman / Abdulrahman)",
    "particle": "the article of a family name written differently or on one side only (Al-Hariri / Alhariri / Hariri)",
    "swapped_names": "given and family (or father's) names in each other's fields",
    "chain_truncated": "chain name recorded with a different number of parts",
    "family_name_missing": "no father's or family name on one side",
    "nickname_as_name": "a short form (Abdi, Mhd, Fati) given as the given name on one side",
    "typo": "keyboard-adjacent letter, dropped, doubled or transposed letters",
    "arabic_script": "names written in Arabic script on one side only",
    "geez_script": "names written in Ge'ez script on one side only",
    "age_estimated": "the case's age is an estimate, off by a year or more",
    "age_drift": "a year or more between separation and registration",
    "age_at_inquiry": "the relative gave the child's age at the inquiry, not at separation",
    "dob_missing": "date of birth missing on at least one side",
    "dob_day_month_swapped": "day and month of the date of birth swapped",
    "dob_typo": "one digit of the date of birth wrong",
    "dob_year_off": "year of birth off by one",
    "location_level": "place of separation given at different levels of the hierarchy",
    "location_wrong": "place of separation given as a neighbouring place on one side",
    "sex_unknown": "sex unknown on one side",
    "sex_wrong": "sex recorded differently",
    # who else is in the data (hard negatives)
    "common_name": "the child's given name is one of the three most common of its tradition",
    "namesake_case": "another registered child has the same given, father's and grandfather's (or family) name",
    "registered_sibling": "a brother or sister of the child is registered too",
    "registered_twin": "the child's twin is registered",
    "registered_cousin": "a cousin (same grandfather and family name, often the same place) is registered",
    "multi_child_request": "the relative looks for several children in one request",
    # traces without a proposable true case
    "unregistered": "the child was never registered (no true case)",
    "unregistered_sibling_registered": "never registered, but a sibling is",
    "unregistered_twin_registered": "never registered, but the twin is",
    "no_consent": "the true case has no consent for tracing (must not be proposed)",
}

# ---------------------------------------------------------------------------------
# Names. One entry per line:
#   Primary [weight] | other Latin spellings | so: Somali-orthography spellings
#   | fr: francophone spellings | ar: Arabic script | ge: Ge'ez script | short: short forms
# "_" stands for a space inside one name ("Abdul_Rahman" is the two-word spelling).
# Written for this generator; see the module docstring on independence.
# ---------------------------------------------------------------------------------

SOMALI_MALE = """
Mohamed 30 | Mohammed Mohamad Muhammad Mahamed Mohamet | so: Maxamed Maxammed | ar: محمد | short: Moha Mohd
Abdi 10 | Abdy | so: Cabdi | ar: عبدي
Ahmed 9 | Ahmad Ahmet | so: Axmed | ar: أحمد
Ali 8 | Aly | so: Cali | ar: علي
Hassan 8 | Hasan Hassen | so: Xasan Xassan | ar: حسن
Abdullahi 7 | Abdulahi Abdillahi Abdallah | so: Cabdullaahi Cabdilaahi | ar: عبدالله | short: Abdi
Hussein 6 | Husein Hussain Hussen | so: Xuseen Xuseyn | ar: حسين
Omar 6 | Umar Omer | so: Cumar | ar: عمر
Yusuf 5 | Yussuf Yousuf Yusef | so: Yuusuf | ar: يوسف
Ibrahim 5 | Ibraahim Ebrahim | so: Ibraahin Ibraahim | ar: إبراهيم | short: Ibro
Abdirahman 5 | Abdurahman Abdul_Rahman Abdulrahman | so: Cabdiraxmaan Cabduraxmaan | ar: عبدالرحمن | short: Abdi
Mohamud 4 | Mahmoud Mahmud Mohamoud | so: Maxamuud | ar: محمود
Farah 4 | Farrah | so: Faarax | ar: فرح
Nur 4 | Noor Nour | so: Nuur | ar: نور
Osman 4 | Othman Usman | so: Cismaan Cusmaan | ar: عثمان
Ismail 3 | Ismael Esmail | so: Ismaaciil | ar: إسماعيل
Abdikarim 3 | Abdulkarim Abdikariim | so: Cabdikariim | ar: عبدالكريم | short: Abdi
Abdirashid 3 | Abdirashiid Abdurashid | so: Cabdirashiid | ar: عبدالرشيد | short: Abdi
Aden 3 | Adan Adam | so: Aadan | ar: آدم
Jama 3 | Jamaa | so: Jaamac | ar: جامع
Warsame 2 | Warsama | so: Warsame
Dahir 2 | Daher Tahir | so: Daahir | ar: طاهر
Said 2 | Saeed Saed Sayid | so: Saciid | ar: سعيد
Hamza 2 | Hamsa Hamze | so: Xamza | ar: حمزة
Bashir 2 | Basher Bashiir | so: Bashiir | ar: بشير
Liban 2 | Libaan | so: Liibaan
Guled 2 | Guuled | so: Guuleed
Zakaria 2 | Zakariya Zakariye | so: Sakariye | ar: زكريا
Abdiaziz 2 | Abdulaziz Abdiasis | so: Cabdicasiis | ar: عبدالعزيز | short: Abdi
Mahad 2 | Mahaad
Khalid 2 | Khaled | so: Khaalid | ar: خالد
Mustafe 1 | Mustafa Mustapha | ar: مصطفى
Yasin 1 | Yassin | so: Yaasiin | ar: ياسين
Abshir 1 | Abshiir
Idris 1 | Idriss | so: Idiris | ar: إدريس
Salah 1 | Salax | so: Saalax | ar: صلاح
Abdiqani 1 | Abdulqani Abdighani | so: Cabdiqani | ar: عبدالغني | short: Abdi
"""

SOMALI_FEMALE = """
Fatima 14 | Fadumo Faduma Fatuma | so: Faadumo Faaduma | ar: فاطمة
Amina 8 | Ameena | so: Aamina | ar: آمنة
Hodan 6 | Hodon
Halima 6 | Halimo Haliima | so: Xaliimo | ar: حليمة
Asha 6 | Aisha Aysha Ayesha | so: Caasha Caisha | ar: عائشة
Sahra 5 | Sahro Zahra | ar: زهراء
Ayan 5 | Ayaan | so: Ayaan
Hawa 5 | Hawo Hawaa | so: Xaawo | ar: حواء
Khadija 5 | Khadiija Hadija Kadija | so: Khadiija | ar: خديجة | short: Dija
Ikran 3 | Ikraan | so: Ikraan
Ifrah 3 | Ifra | so: Ifraax
Deqa 3 | Deeqa | so: Deeqa
Sagal 3 | Sagaal
Nasra 3 | Nasro
Ubah 3 | Ubaah | so: Ubax
Ladan 2 | Ladhan
Maryan 3 | Maryam Mariam | ar: مريم
Hibo 2 | Hibba
Suad 2 | Suaad | so: Sucaad | ar: سعاد
Filsan 2 | Filsaan
Naima 2 | Naema Naeema | so: Naciima | ar: نعيمة
Ruqia 2 | Ruqiya Rukia | so: Ruqiyo | ar: رقية
Shukri 2 | Shukrie
Zamzam 2 | Zemzem | so: Samsam | ar: زمزم
Ilhan 1 | Ilhaan
Muna 2 | Mona | ar: منى
Istahil 1 | Istaahil
"""

SOMALI_NICKNAMES = "Yare Dheere Gaab Cade Madoobe Dhegey Farey Gacmey"

SYRIAN_MALE = """
Mohammed 14 | Mohammad Muhammad Mohamed Mohamad | fr: Mouhamad | ar: محمد | short: Mhd Hamoudi
Ahmad 8 | Ahmed | ar: أحمد | short: Hamoudi
Ali 5 | Aly | ar: علي
Omar 5 | Umar Omer | ar: عمر
Khaled 5 | Khalid Khaleed | ar: خالد
Mahmoud 5 | Mahmud Mahmood | ar: محمود | short: Hamoudi
Hussein 4 | Husain Hussain | ar: حسين
Hassan 4 | Hasan | ar: حسن
Abdullah 4 | Abdallah Abdulla Abd_Allah | ar: عبدالله | short: Abboud
Youssef 4 | Yousef Yusuf Yousif | ar: يوسف
Ibrahim 4 | Ebrahim | ar: إبراهيم
Mustafa 4 | Moustafa Mostafa Mustapha | ar: مصطفى
Abdulrahman 3 | Abdul_Rahman Abdelrahman Abd_al-Rahman Abdalrahman | ar: عبدالرحمن | short: Abboud Abed
Khalil 3 | Khaleel | ar: خليل
Walid 3 | Waleed | fr: Oualid | ar: وليد
Bilal 3 | Belal | ar: بلال
Hamza 3 | Hamzah Hamze | ar: حمزة
Tariq 3 | Tarek Tareq Tarik | ar: طارق
Rami 2 | Ramy | ar: رامي
Samir 2 | Sameer | ar: سمير
Saleh 2 | Salih | ar: صالح
Anas 2 | Anass | ar: أنس
Obada 2 | Ubada Oubada Obadah | ar: عبادة
Yahya 2 | Yehia Yahia | ar: يحيى
Ammar 2 | Amar Ammaar | ar: عمار
Adnan 1 | Adnaan | ar: عدنان
Jamal 1 | Jamaal Gamal | ar: جمال
Fadi 1 | Fady | ar: فادي
Ayman 1 | Aiman | ar: أيمن
Qusai 1 | Qusay Kusai | ar: قصي
Zaid 1 | Zayd Zeid | ar: زيد
Moaz 1 | Muath Mouaz Muaz | ar: معاذ
"""

SYRIAN_FEMALE = """
Fatima 7 | Fatma Fatimah | ar: فاطمة | short: Fatoum
Aya 6 | Ayah | ar: آية
Nour 5 | Noor Nur | ar: نور
Sara 5 | Sarah | ar: سارة
Maryam 5 | Mariam Mariyam Meryem | ar: مريم
Rama 4 | Ramah | ar: راما
Zainab 4 | Zaynab Zeinab | ar: زينب
Aisha 4 | Aicha Ayesha Aysha | ar: عائشة
Hala 3 | Halah | ar: هلا
Rana 3 | Ranaa | ar: رنا
Heba 3 | Hiba Hibah | ar: هبة
Raghad 3 | Raghd | ar: رغد
Asmaa 3 | Asma | ar: أسماء
Lana 2 | Lanah | ar: لانا
Amira 2 | Ameera Amirah | ar: أميرة
Dalia 2 | Dalya Daliya | ar: داليا
Shahd 2 | Shahad | ar: شهد
Judy 2 | Joudi Judi | ar: جودي
Rahaf 2 | Rahaaf | ar: رهف
Batoul 2 | Batool Batul | ar: بتول
Huda 2 | Houda Hoda | ar: هدى
Amal 2 | Amel | ar: أمل
Salma 2 | Selma | ar: سلمى
Layla 2 | Laila Leila | ar: ليلى
Yasmin 2 | Yasmine Yasmeen | ar: ياسمين
Malak 2 | Malaak | ar: ملاك
Reem 2 | Rim | ar: ريم
Israa 1 | Isra Esraa | ar: إسراء
Duaa 1 | Doaa Dua | ar: دعاء
Hanan 1 | Hanaan | ar: حنان
"""

SYRIAN_FAMILY = """
Al-Ahmad 3 | Al_Ahmad Alahmad El-Ahmad | ar: الأحمد
Al-Hamoud 2 | Al_Hammoud Hamoud | ar: الحمود
Haddad 2 | Hadad Al-Haddad | ar: حداد
Khalil 2 | Khaleel | ar: خليل
Darwish 2 | Darweesh Derwish | ar: درويش
Hamdan 2 | Hamdaan | ar: حمدان
Al-Hussein 2 | Al_Hussein Alhussein El-Hussein | ar: الحسين
Al-Najjar 2 | Najjar Al_Najjar Alnajjar | ar: النجار
Kassem 2 | Qasem Qassem Qasim | ar: قاسم
Al-Saleh 2 | Al_Saleh Alsaleh | ar: الصالح
Al-Ali 2 | Al_Ali Alali El-Ali | ar: العلي
Al-Khatib 2 | Khatib Alkhatib El-Khatib | ar: الخطيب
Shaheen 2 | Shahin Chahine | ar: شاهين
Al-Masri 1 | Al_Masri Almasri El-Masri | ar: المصري
Othman 1 | Osman Uthman | ar: عثمان
Al-Hariri 2 | Hariri Al_Hariri Alhariri | ar: الحريري
Al-Zoubi 2 | Zoubi Al_Zoubi Alzoubi Al-Zubi | ar: الزعبي
Al-Jasim 1 | Al_Jassem Aljasim Jassim | ar: الجاسم
Al-Abdullah 1 | Al_Abdallah Alabdullah | ar: العبدالله
Al-Rifai 1 | Rifai Al_Refai Alrifai | ar: الرفاعي
Al-Omar 1 | Al_Omar Alomar | ar: العمر
Al-Halabi 1 | Halabi Alhalabi | ar: الحلبي
Nasser 1 | Naser Nasir | ar: ناصر
Suleiman 1 | Sulaiman Sleiman | ar: سليمان
Al-Khalaf 1 | Khalaf Alkhalaf | ar: الخلف
Al-Issa 1 | Issa Al_Eissa Alissa | ar: العيسى
Al-Mohammad 1 | Al_Mohammed Almohammad | ar: المحمد
"""

SUDANESE_MALE = """
Mohamed 12 | Mohammed Muhammad Mohamad | fr: Mahamat Mahamat Mouhamed | ar: محمد
Ahmed 6 | Ahmad | fr: Ahmat Ahamat | ar: أحمد
Adam 5 | Adum Aadam | fr: Adoum | ar: آدم
Ibrahim 5 | Ibraheem | fr: Brahim Ibrahima | ar: إبراهيم
Abdallah 4 | Abdalla Abdullah | fr: Abdoulaye Abdallah | ar: عبدالله | short: Abdu
Ishag 3 | Ishaq Ishak | fr: Issakha Issaka | ar: إسحاق
Yacoub 3 | Yagoub Yaqub Yakub | fr: Yacoub | ar: يعقوب
Osman 3 | Othman Usman | fr: Ousmane Ousman | ar: عثمان
Hamid 3 | Hamed Haamid | ar: حامد
Abakar 3 | Abubakar Abu_Bakr Abubaker | fr: Aboubakar Abakar | ar: أبكر | short: Bakar
Haroun 3 | Harun Haroon Haron | ar: هارون
Musa 3 | Mousa Moussa | fr: Moussa | ar: موسى
Hassan 3 | Hasan | fr: Hassane Assane | ar: حسن
Hussein 2 | Husein | fr: Hissein Houssein | ar: حسين
Suleiman 2 | Sulaiman Sulayman | fr: Souleymane | ar: سليمان
Yahya 2 | Yehia | fr: Yaya | ar: يحيى
Idris 2 | Idriss Edris | fr: Idriss | ar: إدريس
Ismail 2 | Ismael | fr: Ismael Ismael | ar: إسماعيل
Khamis 2 | Khamees Hamis | ar: خميس
Bakhit 2 | Bakheet | ar: بخيت
Abdelrahman 2 | Abdalrahman Abdel_Rahman Abdulrahman | fr: Abderahmane Abdramane | ar: عبدالرحمن
Mahmoud 2 | Mahmud | fr: Mahamoud | ar: محمود
Nour 1 | Nur | ar: نور
"""

SUDANESE_FEMALE = """
Fatima 8 | Fatma Fatuma | fr: Fatime Fatouma | ar: فاطمة
Aisha 6 | Aysha Ayesha | fr: Achta Ache Aicha | ar: عائشة
Hawa 5 | Hawaa | fr: Haoua Awa | ar: حواء
Khadija 4 | Khadiga Kadija | fr: Khadidja Kadidja | ar: خديجة
Mariam 4 | Maryam | fr: Mariame | ar: مريم
Zahra 3 | Zahara | fr: Zara | ar: زهراء
Zenaba 3 | Zainab Zeinab | fr: Zeinaba | ar: زينب
Halima 3 | Haleema | fr: Halime | ar: حليمة
Amna 3 | Amina Ameena | fr: Amne | ar: آمنة
Kaltoum 2 | Kalthoum Khaltoum | fr: Kaltouma | ar: كلثوم
Sadia 2 | Saadia Sadiya | ar: سعدية
Nafisa 2 | Nafeesa | fr: Nafissa | ar: نفيسة
Safia 2 | Safiya Safiyya | ar: صفية
Rahma 2 | Rahmah | ar: رحمة
Salma 1 | Selma | ar: سلمى
"""

AFGHAN_MALE = """
Mohammad 10 | Mohammed Muhammad Mohamad | ar: محمد | short: Mohd
Ahmad 6 | Ahmed | ar: احمد
Ali 5 | Aly | ar: علی
Hussain 4 | Hussein Hossain Hosain Husain | ar: حسین
Mahmood 3 | Mahmud Mehmood Mahmoud | ar: محمود
Abdul_Rahim 3 | Abdulrahim Abdul_Raheem Abdurrahim | ar: عبدالرحیم
Abdullah 3 | Abdulla Abdollah | ar: عبدالله
Karim 3 | Kareem | ar: کریم
Rahim 3 | Raheem | ar: رحیم
Najibullah 3 | Najib_Ullah Najeebullah Najibollah | ar: نجیب‌الله | short: Najib
Farid 2 | Fareed | ar: فرید
Jawad 2 | Javad Jawaad | ar: جواد
Hamid 2 | Hameed | ar: حمید
Zabihullah 2 | Zabiullah Zabih_Ullah Zabihollah | ar: ذبیح‌الله | short: Zabi
Sayed 2 | Sayyed Seyed Syed | ar: سید
Mustafa 2 | Mostafa Mustapha | ar: مصطفی
Nasir 2 | Naseer Naser | ar: ناصر
Wahid 2 | Waheed Vahid | ar: وحید
Shafiq 2 | Shafeeq Shafik | ar: شفیق
Bilal 2 | Belal | ar: بلال
Omid 2 | Umid Omeed | ar: امید
Sohrab 1 | Suhrab | ar: سهراب
Rahmatullah 1 | Rahmat_Ullah Rahmatulla | ar: رحمت‌الله | short: Rahmat
Noorullah 1 | Nurullah Noor_Ullah | ar: نورالله | short: Noor
"""

AFGHAN_FEMALE = """
Fatima 5 | Fatema Fatemeh Fatimah | ar: فاطمه
Zahra 5 | Zahraa Zohra Zuhra | ar: زهرا
Maryam 4 | Mariam | ar: مریم
Shabnam 3 | Shabnum | ar: شبنم
Farzana 3 | Farzaneh Farzane | ar: فرزانه
Nargis 3 | Narges | ar: نرگس
Laila 3 | Layla Leila | ar: لیلا
Parwana 2 | Parvaneh Parwanah | ar: پروانه
Zarghona 2 | Zarghuna Zarghoona | ar: زرغونه
Malalai 2 | Malalay Malaley | ar: ملالۍ
Fereshta 2 | Freshta Frishta Fereshteh | ar: فرشته
Mahbooba 2 | Mahbuba Mahbubeh | ar: محبوبه
Shukria 2 | Shukriya Shokria | ar: شکریه
Nilofar 2 | Nilufar Niloofar | ar: نیلوفر
Marzia 2 | Marzieh Marziya | ar: مرضیه
Sima 2 | Seema | ar: سیما
Roya 2 | Roia | ar: رویا
Zainab 2 | Zaynab Zeinab | ar: زینب
Sakina 1 | Sakineh Sakeena | ar: سکینه
Hadia 1 | Hadiya | ar: هدیه
"""

AFGHAN_FAMILY = """
Ahmadzai 2 | Ahmadzay Ahmedzai | ar: احمدزی
Safi 2 | Saafi | ar: صافی
Sultani 2 | Soltani | ar: سلطانی
Rahimi 2 | Raheemi | ar: رحیمی
Hussaini 2 | Hosseini Husaini | ar: حسینی
Haidari 2 | Haydari Heidari | ar: حیدری
Mohammadi 2 | Mohamadi Muhammadi | ar: محمدی
Noori 2 | Nuri Nouri | ar: نوری
Sadat 1 | Saadat | ar: سادات
Amiri 1 | Ameeri | ar: امیری
Karimi 1 | Kareemi | ar: کریمی
Rezaei 1 | Rezai Rezayi | ar: رضایی
Wardak 1 | Wardag | ar: وردک
Stanikzai 1 | Stanekzai | ar: ستانکزی
Yousufzai 1 | Yousafzai Yusufzai | ar: یوسفزی
Azizi 1 | Azeezi | ar: عزیزی
"""

KURDISH_MALE = """
Mohammed 4 | Mihemed Muhammad Mohamad | ar: محەمەد
Azad 4 | Azat | ar: ئازاد
Ahmed 3 | Ahmad Ehmed | ar: ئەحمەد
Rebaz 3 | Rêbaz Rebas | ar: ڕێباز
Shivan 3 | Şivan Sivan Shevan | ar: شڤان
Dilshad 3 | Dilşad Dilshat | ar: دلشاد
Karwan 3 | Karwaan | ar: کاروان
Hozan 2 | Hozhan | ar: هۆزان
Baran 2 | Baraan | ar: باران
Aram 2 | Araam | ar: ئارام
Hemin 2 | Hêmin Hemn | ar: هێمن
Ali 2 | Elî Aly | ar: عەلی
Omar 2 | Umar Omer | ar: عومەر
Kawa 2 | Kawe | ar: کاوە
Sherzad 1 | Şerzad Sherzat | ar: شێرزاد
Bakhtiyar 1 | Bakhtiar Bextiyar | ar: بەختیار
Rojhat 1 | Rojhad
"""

KURDISH_FEMALE = """
Rojin 3 | Rozhin Rojîn | ar: ڕۆژین
Berivan 3 | Bêrîvan Berivane | ar: بێریڤان
Avin 3 | Aveen Avîn | ar: ئاڤین
Helin 2 | Hêlîn Heleen | ar: هێلین
Zilan 2 | Zîlan | ar: زیلان
Shilan 2 | Şîlan | ar: شیلان
Dilan 2 | Dîlan | ar: دیلان
Jiyan 2 | Zhiyan Jian | ar: ژیان
Viyan 2 | Vian Vyan | ar: ڤیان
Hevin 2 | Hêvîn Heveen | ar: هێڤین
Fatima 2 | Fatma Fatime | ar: فاتیمە
Nishtiman 1 | Nishtman Niştiman | ar: نیشتمان
Delal 1 | Dilal
"""

KURDISH_FAMILY = """
Mustafa 2 | Mistefa Mostafa | ar: مستەفا
Hassan 2 | Hesen Hasan | ar: حەسەن
Rashid 2 | Reşîd Rasheed | ar: ڕەشید
Khalil 2 | Xelîl Khaleel | ar: خەلیل
Hussein 1 | Husên Husain | ar: حوسێن
Zebari 1 | Zibari Zebary | ar: زێباری
Doski 1 | Duski | ar: دۆسکی
Amedi 1 | Amadi | ar: ئامێدی
Hawrami 1 | Horami | ar: هەورامی
"""

SOUTH_SUDANESE_MALE = """
Deng 6 | Dheng Dɛŋ
Garang 4 | Garaang Garaŋ
Majok 4 | Majook Mayok Majɔk
John 3 | Jon
Peter 3 | Piter Petro
Kuol 3 | Kuel Kool
Chol 3 | Col Chool
Akol 3 | Akool Akɔl
Gatluak 3 | Gatluok Gatlwak
Gatkuoth 3 | Gatkuth Gatkwoth
Bol 3 | Bool
Makuei 2 | Makwei Makuey
Mabior 2 | Mabiior
Machar 2 | Macar Machaar
Malual 2 | Maluel Malwal
Ajak 2 | Ajaak
Lual 2 | Luaal Lwal
Mayen 2 | Mayeen
Riek 2 | Riak
Thon 2 | Thoon
Jok 2 | Jook
James 2 | Jemes
Samuel 2 | Samwel
Daniel 2 | Danial
Simon 2 | Saimon
Puok 1 | Pouk
Nyuon 1 | Nyuan
Gabriel 1 | Gebriel
Emmanuel 1 | Emanuel Imanuel
"""

SOUTH_SUDANESE_FEMALE = """
Nyakim 3 | Nyakiem Nyakiim
Nyandeng 3 | Nyandheng Nyandɛŋ
Achol 3 | Acol Achool
Abuk 3 | Abuuk
Mary 3 | Mari
Nyabol 2 | Nyaboll
Nyaluak 2 | Nyaluok Nyalwak
Ayen 2 | Ayeen
Adut 2 | Aduut
Nyachuol 2 | Nyacuol Nyachol
Athieng 2 | Athiang
Ajok 2 | Ajook
Rebecca 2 | Rebeka Rebekah
Grace 2 | Gres
Nyayien 1 | Nyayian
Nyibol 1 | Nyiibol
Elizabeth 1 | Elisabeth
Martha 1 | Marta
"""

ERITREAN_MALE = """
Yonas 4 | Jonas Yonnas | ge: ዮናስ
Tesfay 4 | Tesfai Tesfaye Tesfaey | ge: ተስፋይ
Kidane 3 | Kidanae Kiddane | ge: ኪዳነ
Haile 3 | Hayle Hailé | ge: ሃይለ
Mehari 3 | Meharie Mihari | ge: መሓሪ
Tekle 3 | Teklay Tecle | ge: ተኽለ
Berhane 3 | Birhane Berhani | ge: ብርሃነ
Dawit 3 | Dawitt Dawid | ge: ዳዊት
Yohannes 3 | Yohanes Yohanis Johannes | ge: ዮሃንስ | short: Yoni
Amanuel 3 | Emmanuel Amaniel | ge: ኣማኑኤል
Goitom 2 | Goytom Goitum | ge: ጎይትኦም
Mulugeta 2 | Mulugetta | ge: ሙሉጌታ
Samuel 2 | Samiel | ge: ሳሙኤል
Habtom 2 | Habtum Habtoum | ge: ሃብቶም
Filmon 2 | Filimon Philemon | ge: ፊልሞን
Abraham 2 | Abrham Abreham | ge: ኣብርሃም
Efrem 2 | Ephrem Efrim | ge: ኤፍሬም
Senay 2 | Senai Sennay | ge: ሰናይ
Michael 2 | Mikael Mikiel | ge: ሚካኤል
Robel 2 | Rubel | ge: ሮቤል
Gebremedhin 2 | Gebre_Medhin Ghebremedhin Gebremedin | ge: ገብረመድህን | short: Gebre
Gebrehiwet 1 | Gebre_Hiwet Ghebrehiwet Gebrehiwot | ge: ገብረሂወት | short: Gebre
Merhawi 1 | Mehrawi Merhawe | ge: መርሃዊ
Tewelde 1 | Tewolde | ge: ተወልደ
Zerai 1 | Zeray | ge: ዘርኣይ
Weldu 1 | Woldu | ge: ወልዱ
"""

ERITREAN_FEMALE = """
Helen 3 | Hellen | ge: ሄለን
Saba 3 | Sabba | ge: ሳባ
Senait 3 | Senayt Sinait Seniat | ge: ሰናይት
Selam 3 | Salam | ge: ሰላም
Mebrat 2 | Mebrhat Mebrahit | ge: መብራት
Tsega 2 | Tsegga Tsige | ge: ጸጋ
Ruta 2 | Rutha | ge: ሩታ
Yordanos 2 | Jordanos Yordanose | ge: ዮርዳኖስ
Feven 2 | Fiven Fevin | ge: ፌቨን
Rahel 2 | Rahiel | ge: ራሄል
Hiwet 2 | Hiwot Hewet | ge: ሕይወት
Freweini 2 | Frewoini Frewini | ge: ፍረወይኒ
Tirhas 2 | Tirhaz Terhas | ge: ትርሓስ
Winta 2 | Weinta | ge: ዊንታ
Luwam 2 | Luam Lewam | ge: ሉዋም
Semhar 2 | Simhar | ge: ሰምሃር
Eden 2 | Edén | ge: ኤደን
Mihret 1 | Mehret Mihiret | ge: ምሕረት
Lidia 1 | Lydia Lidya | ge: ሊድያ
Delina 1 | Dalina | ge: ደሊና
"""

CONGOLESE_MALE = """
Jean 4
Joseph 3 | Josephe Yosefu
Patrick 3 | Patric
Dieudonne 3 | Dieudonné Dieu-Donné Dieu_Donne | short: Dieudo
Fiston 3 | Fistone
Pierre 2 | Piere
Christian 2 | Cristian
Jonathan 2 | Jonatan
Emmanuel 2 | Emanuel | short: Manu
Bienvenu 2 | Bienvenue
Glody 2 | Glodi Glodie
Exauce 2 | Exaucé
Benjamin 2 | Benjamen
Moise 2 | Moïse Moses
Heritier 2 | Héritier
Tresor 2 | Trésor
Prince 2 | Prinse
Kambale 2 | Kambalé
Paluku 1 | Palouku
Kasereka 1 | Kaserka
"""

CONGOLESE_FEMALE = """
Marie 4 | Mari
Grace 3 | Grâce
Esther 3 | Ester
Chantal 2 | Chantale
Christelle 2 | Cristelle Christel
Merveille 2 | Merveil
Divine 2 | Divina
Rachel 2 | Rachelle
Sarah 2 | Sara
Gloire 2 | Gloir
Nadege 1 | Nadège
Benedicte 1 | Bénédicte
Plamedi 1 | Plamédie Plamedie
Deborah 1 | Débora Debora
Francoise 1 | Françoise
Kahindo 2 | Kahindu
Kavira 2 | Kaviira
Masika 2 | Massika
"""

CONGOLESE_FAMILY = """
Mukendi 2 | Moukendi Mukendji
Ilunga 2 | Ilounga
Kasongo 2 | Kassongo
Mbuyi 2 | Mbuy
Tshibangu 2 | Chibangu Tshibang
Kalala 2 | Kalalla
Mutombo 2 | Moutombo
Ngoy 2 | Ngoie Ngoyi
Kabongo 2 | Kabongho
Banza 1 | Banzaa
Mwamba 1 | Muamba Mwaamba
Kalonji 1 | Kalondji
Mulumba 1 | Moulumba
Lukusa 1 | Loukousa
Kanku 1 | Kankou
Tshimanga 1 | Chimanga
Kayembe 1 | Kayembé
Katende 1 | Katendé
Mumbere 1 | Moumbere
Kahindo 1 | Kahindu
Nsimba 1 | Nsimbha
"""

SWAHILI_MALE = """
Juma 4 | Jumaa
Hamisi 3 | Hamis Khamis
Baraka 3 | Barakaa
Rashidi 3 | Rashid Rachidi
Hassani 3 | Hasani Hassan
Saidi 3 | Said Sayidi
Ramadhani 3 | Ramadani Ramazani Ramadhan
Athumani 2 | Athman Othmani
Salim 2 | Salimu Selim
Bakari 2 | Bakary Bakar
Omari 2 | Omar Umari
Shabani 2 | Shaban Chabani
Musa 2 | Moussa Mussa
Amani 2 | Amany
Issa 2 | Isa
Abdallah 1 | Abdala Abdalla
Faraji 1 | Faraja
"""

SWAHILI_FEMALE = """
Zawadi 3 | Zawady
Rehema 3 | Rahema Rehma
Neema 3 | Nehema
Asha 3 | Aisha Aysha
Fatuma 3 | Fatma Fatima
Mwanaisha 2 | Mwanaisa
Halima 2 | Alima
Amina 2 | Aminah Amena
Mwajuma 2 | Mwajumaa
Saida 2 | Sayida Saïda
Zuhura 2 | Zuhra Zohra
Mariamu 2 | Mariam Maryam
Upendo 1 | Upendoo
Imani 1 | Imany
Subira 1 | Subiraa
Tatu 1 | Tatuu
"""

HAUSA_MALE = """
Muhammadu 4 | Muhammad Mohammed Mamman | fr: Mahamadou Mamane Mohamadou
Abubakar 4 | Abubakr Abu_Bakar | fr: Aboubacar Boubacar Aboubakar | short: Bakar Abba
Usman 3 | Usmanu Osman | fr: Ousmane
Musa 3 | Musah | fr: Moussa
Ibrahim 3 | Ibraheem | fr: Ibrahima Brahim | short: Ibro
Sani 3 | Saani | fr: Sanni
Aliyu 3 | Aliu | fr: Aliou Alio
Bello 2 | Belo
Yusuf 2 | Yusufu Yousuf | fr: Issoufou Youssouf
Umaru 2 | Umar Umaro | fr: Oumarou
Haruna 2 | Harouna | fr: Harouna
Lawal 2 | Lawali | fr: Lawali
Garba 2 | Garbah
Suleiman 2 | Sulaiman Sulaimanu | fr: Souleymane
Nasiru 2 | Nasir Nassiru | fr: Nassirou
Kabiru 2 | Kabir Kabeer | fr: Kabirou
Shehu 1 | Shaihu | fr: Chehou
Idris 1 | Idrisa | fr: Idrissa
"""

HAUSA_FEMALE = """
Aisha 4 | Aishatu Aishat | fr: Aichatou Aissatou Aicha | short: Aishe
Hauwa 4 | Hawa Hauwau | fr: Haoua Awa
Zainab 3 | Zainabu Zaynab | fr: Zeinabou Zenabou
Fatima 3 | Fatimah Fatimatu | fr: Fatoumata | short: Fati
Hadiza 3 | Hadizatu | fr: Adiza
Amina 3 | Aminatu Aminah | fr: Aminata
Halima 2 | Halimatu | fr: Halimatou
Maryam 2 | Mariya Maryamu | fr: Mariama
Rabi 2 | Rabiatu | fr: Rabiatou
Bilkisu 2 | Balkisu Bilkis | fr: Balkissa
Safiya 2 | Safiyya Safiyatu | fr: Safiatou
Hafsat 2 | Hafsatu Hafsa | fr: Hafsatou
Binta 2 | Bintu
Jamila 1 | Jameela
Salamatu 1 | Salamata | fr: Salamatou
"""


@dataclass(frozen=True)
class NameEntry:
    """One name of one tradition and its ways of being written."""

    key: str  # tradition:primary, stable
    primary: str
    weight: float
    latin: tuple[str, ...]  # primary first
    somali: tuple[str, ...] = ()
    french: tuple[str, ...] = ()
    arabic: str | None = None
    geez: str | None = None
    short: tuple[str, ...] = ()


def _parse_entries(tradition: str, text: str) -> tuple[NameEntry, ...]:
    entries = []
    for line in text.strip().splitlines():
        parts = [p.strip() for p in line.split("|")]
        head = parts[0].split()
        primary = head[0].replace("_", " ")
        weight = float(head[1]) if len(head) > 1 else 1.0
        latin, somali, french, short = [primary], [], [], []
        arabic = geez = None
        for part in parts[1:]:
            if ":" in part and part.split(":", 1)[0] in ("so", "fr", "ar", "ge", "short"):
                tag, value = part.split(":", 1)
                words = [w.replace("_", " ") for w in value.split()]
                if tag == "so":
                    somali = words
                elif tag == "fr":
                    french = words
                elif tag == "ar":
                    arabic = value.strip()
                elif tag == "ge":
                    geez = value.strip()
                else:
                    short = words
            else:
                latin += [w.replace("_", " ") for w in part.split()]
        entries.append(NameEntry(
            key=f"{tradition}:{primary.lower()}", primary=primary, weight=weight,
            latin=tuple(dict.fromkeys(latin)), somali=tuple(dict.fromkeys(somali)),
            french=tuple(dict.fromkeys(french)), arabic=arabic, geez=geez, short=tuple(short)))
    return tuple(entries)



# Rarer names of each tradition ("Primary/variant/variant=Arabic or Ge'ez script"), sharing
# TAIL_SHARE of the frequency: without a long tail, at 100,000 children nearly half
# would have a namesake with the same three-part name.
TAILS = {
    ("somali", "male"): """
        Abdifatah/Abdifataah Abdinasir/Abdinaasir Abdiwali/Cabdiwali Abdisalan/Abdisalam Abdulkadir/Abdiqadir
        Ayub/Ayuub Bile/Bille Dalmar Elmi/Cilmi Fuad/Fuaad Gedi/Geedi Hirsi/Xirsi Ilyas/Ilyaas Isak/Isaaq
        Jibril/Jibriil Kadar/Qadar Khadar Mukhtar/Mukhtaar Nasir/Naasir Qasim/Qaasim Rashid/Rashiid Sharif/Shariif
        Shire Yonis/Yoonis Awil/Cawil Burhan/Burhaan Deeq Faysal/Faisal Hanad/Hanaad Hamse/Xamse Muse/Muuse
        Abukar/Abuukar Dayib Eid/Ciid Garad Hashi/Xaashi Jimale Keynan Mowlid Nuradin/Nuuradiin Sahal Tahlil
        Weheliye Yasir/Yaasir Ahmednur Bashe Fiqi Hussen/Xuseen""",
    ("somali", "female"): """
        Amran/Amraan Anab/Canab Basra Bilan/Bilaan Bushra Deka Faiza/Faaiso Fardowsa/Fardoos Farhiya/Farxiyo
        Habiba/Xabiibo Hamdi/Xamdi Hani/Haani Hibaaq Idil/Iidil Iqra/Iqro Jamila/Jamiila Kaltun/Kaltuun Leyla/Leila
        Marwo Mulki Najma/Najmo Nimco/Nimo Qamar Rahma/Raxmo Ramla/Ramlo Safiya/Safiyo Saida/Saciido Samira/Samiira
        Siham/Sihaam Sumaya/Sumaiya Warsan Yasmin/Yasmiin Zeynab/Zaynab Zuleikha/Sulekha Ebyan/Ebyaan Idman/Iidman
        Kowsar/Kawsar Nasteho/Nasteexo Sabirin/Sabriin Hinda Maryama Sucaad""",
    ("syrian", "male"): """
        Abdulkarim/Abdelkarim=عبدالكريم Abdulaziz/Abdelaziz=عبدالعزيز Alaa/Ala'a=علاء Amjad=أمجد Anwar=أنور
        Asaad/Asad=أسعد Bashar=بشار Bassam=بسام Diaa/Diya=ضياء Eyad/Iyad=إياد Fares/Faris=فارس Firas=فراس
        Ghaith/Ghayth=غيث Hadi=هادي Haitham/Haytham=هيثم Hazem=حازم Hisham=هشام Ismail=إسماعيل Jihad=جهاد
        Kareem/Karim=كريم Laith/Layth=ليث Louay/Luay=لؤي Maher=ماهر Majd=مجد Malek/Malik=مالك Marwan=مروان
        Mazen=مازن Mohannad/Muhannad=مهند Munir/Mounir=منير Nabil=نبيل Nizar=نزار Osama/Usama=أسامة Raed/Ra'ed=رائد
        Rakan=راكان Riad/Riyad=رياض Saad/Sa'ad=سعد Safwan=صفوان Salem/Salim=سالم Sami/Samy=سامي Shadi/Chadi=شادي
        Suhaib/Sohaib=صهيب Taha=طه Talal=طلال Wael/Wa'el=وائل Yamen/Yaman=يامن Yazan=يزن Zakaria/Zakariya=زكريا
        Ziad/Ziyad=زياد Karam=كرم Muhsen/Mohsen=محسن Nawaf=نواف""",
    ("syrian", "female"): """
        Abeer/Abir=عبير Alia/Aliya=عالية Asil/Aseel=أسيل Bayan=بيان Dana=دانة Farah=فرح Ghina/Ghena=غنى
        Hadeel/Hadil=هديل Haya=هيا Iman/Eman=إيمان Inas/Enas=إيناس Jana=جنى Joud/Jud=جود Kinda=كندة Lama=لمى
        Lina/Leena=لينا Maha=مها Manar=منار Marah=مرح Maysa/Maisa=ميساء Nada=ندى Nagham=نغم Noura/Nora=نورة
        Rawan=روان Razan=رزان Ruba/Roba=ربى Ruqaya/Roqaya=رقية Sahar=سحر Sama=سما Samar=سمر Shaima/Shayma=شيماء
        Sidra=سدرة Suha/Soha=سهى Tasneem/Tasnim=تسنيم Tala=تالا Walaa/Wala'a=ولاء Wafa/Wafaa=وفاء Yara=يارا
        Zeina/Zaina=زينة Ghazal=غزل Lujain/Loujain=لجين Bushra/Boushra=بشرى""",
    ("syrian", "family"): """
        Abbas=عباس Al-Sheikh/Sheikh=الشيخ Al-Hamwi/Hamwi=الحموي Kanaan/Kanan=كنعان Al-Attar/Attar=العطار
        Al-Bakkar/Bakkar=البكار Al-Ibrahim/Ibrahim=الإبراهيم Al-Jaber/Jaber=الجابر Al-Khaled/Khaled=الخالد
        Al-Moussa/Mousa=الموسى Al-Qadi/Qadi=القاضي Al-Salem/Salem=السالم Al-Shamali/Shamali=الشمالي
        Al-Tamer/Tamer=التامر Al-Yousef/Yousef=اليوسف Deeb/Dib=ديب Habib/Habeeb=حبيب Al-Haj/Haj=الحاج Hijazi=حجازي
        Jumaa/Juma=جمعة Kurdi=كردي Mansour/Mansur=منصور Mardini=مارديني Sabbagh=صباغ Zein/Zain=زين
        Al-Hasan/Hasan=الحسن Al-Dali/Dali=الدالي Al-Faris/Fares=الفارس Al-Homsi/Homsi=الحمصي
        Al-Hourani/Hourani=الحوراني Al-Shawa/Shawa=الشوا""",
    ("sudanese", "male"): """
        Abdelaziz/Abdulaziz=عبدالعزيز Abdelkarim/Abdulkarim=عبدالكريم Arbab=أرباب Babiker/Babikir=بابكر
        Daoud/Dawood=داود Eltayeb/Altayeb/Tayeb=الطيب Gamar/Qamar=قمر Hamdan=حمدان Hassaballa/Hasaballah=حسب_الله
        Issa/Eisa=عيسى Jibril/Gibril/Djibril=جبريل Kamal=كمال Mahdi=مهدي Mustafa/Moustapha=مصطفى
        Nasreldin/Nasr_Eldin=نصر_الدين Saleh/Salih=صالح Tijani/Tidjani=التجاني Yousif/Yusuf/Youssouf=يوسف
        Zakaria/Zakariya=زكريا Abdelmajid/Abdulmajid=عبدالمجيد Adil/Adel=عادل Bashir/Bachir=بشير
        Djibrine/Jibrin=جبرين Nouradine/Nuraddin=نور_الدين Oumar/Omar=عمر Ali/Aly=علي Anour/Anwar=أنور""",
    ("sudanese", "female"): """
        Awadia=عوضية Batoul/Batool=بتول Hadiya=هدية Hajja/Hadja=حاجة Itidal/Ihtidal=اعتدال Khamisa=خميسة
        Mona/Muna=منى Nasra=نصرة Nura/Noura=نورة Sumaya/Soumaya=سمية Rabha=رابحة Samira=سميرة Sara/Sarah=سارة
        Suad/Souad=سعاد Zamzam=زمزم Seida/Saida=سعيدة Hawaya=حواية Fatna=فاطنة""",
    ("afghan", "male"): """
        Abdul_Ghani/Abdulghani=عبدالغنی Abdul_Wahid/Abdulwahid=عبدالواحد Ahmad_Shah/Ahmadshah=احمدشاه Ajmal=اجمل
        Akbar=اکبر Amanullah/Aman_Ullah=امان‌الله Arif=عارف Asad=اسد Atiqullah=عتیق‌الله Bashir=بشیر
        Daud/Dawood=داود Ehsan/Ihsan=احسان Fawad/Fawaad=فواد Ghulam=غلام Habibullah/Habib_Ullah=حبیب‌الله
        Hasib/Haseeb=حسیب Hayatullah=حیات‌الله Idris=ادریس Ismail=اسماعیل Jamal=جمال Khalid=خالد Masood/Masoud=مسعود
        Mirwais=میرویس Mujtaba=مجتبی Nabi=نبی Naveed/Navid=نوید Qais/Qays=قیس Rafiullah=رفیع‌الله
        Samiullah/Sami_Ullah=سمیع‌الله Shakib/Shakeeb=شکیب Sharif=شریف Sultan=سلطان Tamim/Tameem=تمیم Yama=یما
        Yasin=یاسین Ziaullah/Zia_Ullah=ضیاءالله Zubair=زبیر""",
    ("afghan", "female"): """
        Aisha/Ayesha=عایشه Arezo/Arezu=آرزو Basira/Baseera=بصیره Diba=دیبا Elaha/Ilaha=الهه Fariba=فریبا
        Gulnaz=گلناز Hasina/Haseena=حسینه Homa=هما Karima=کریمه Khatera/Khatira=خاطره Latifa=لطیفه Mahnaz=مهناز
        Masooma/Masuma=معصومه Mina=مینا Mursal/Morsal=مرسل Nadia=نادیه Nazanin=نازنین Nasrin/Nasreen=نسرین
        Parisa=پریسا Rabia=رابعه Razia=راضیه Sadaf=صدف Sahar=سحر Samira=سمیرا Shakila=شکیلا Sharifa=شریفه
        Sohaila/Suhaila=سهیلا Tahmina=تهمینه Wahida=وحیده Yalda=یلدا Zakia/Zakiya=ذکیه Zuhal=زحل""",
    ("afghan", "family"): """
        Jalali=جلالی Nazari=نظری Ahmadi=احمدی Hashimi=هاشمی Kakar=کاکړ Mangal=منگل Niazi=نیازی Osmani=عثمانی
        Qaderi=قادری Rasuli=رسولی Samadi=صمدی Tokhi=توخی Zazai=زازی Barakzai=بارکزی Durrani=درانی Habibi=حبیبی
        Hakimi=حکیمی Latifi=لطیفی Nuristani=نورستانی Omari=عمری Popal=پوپل Sharifi=شریفی Ghafoori/Ghafuri=غفوری""",
    ("kurdish", "male"): """
        Ari Awat Bryar Chiya/Chya Darbaz Diyar Goran Hawre/Hawri Hiwa Jwan Kamaran Lawand Mardin Nawzad Peshraw
        Rawand Sabir Saman Soran Zana Zirak Barzan Dara Halo Rebwar Sirwan""",
    ("kurdish", "female"): """
        Ala Bahar Chnar Darya Dilvin Gulistan Hana Hazha Kajal Lana Nask Newroz/Nawroz Rozha Runak Sara Shno Tara
        Zhina/Jina Hozan Sivan Ronahi""",
    ("kurdish", "family"): """
        Barwari Berwari Shekhani Sindi Rekani Goyi Mizuri Artushi Surchi Jaf Talabani/Talebani""",
    ("south_sudanese", "male"): """
        Akech Akuei Aleu/Alëu Amum Atem Ayom Bany Buol Chuol/Cuol Dak Duop Gai/Gay Gatwech Kiir Kuach Kur Lam Madut
        Manyang Marial Mathiang Nhial Nyang Ruai Tut Wal Wek Yak Ter Gach Abraham Stephen Santino Michael""",
    ("south_sudanese", "female"): """
        Achan/Acan Adhieu Agot Aluel Amer Angelina Apajok Ayak Mer Nyabuok Nyadak Nyaduop Nyagoa Nyakuma Nyalam
        Nyamal Nyanchiew Nyarieka Nyaruach Nyawech Rachel Sunday Susan Tabitha""",
    ("eritrean", "male"): """
        Aman=ኣማን Asmerom=ኣስመሮም Bereket=በረከት Biniam/Biniyam=ቢንያም Daniel=ዳንኤል Elias=ኤልያስ Ermias=ኤርምያስ Fitsum=ፍጹም
        Ghirmay/Girmay=ግርማይ Isaias/Isayas=ኢሳይያስ Kibrom=ክብሮም Mebrahtu=መብራህቱ Medhanie=መድሃኔ Mussie/Musie=ሙሴ
        Natnael=ናትናኤል Negasi=ንጋሲ Nahom=ናሆም Okbay=ዑቕባይ Petros=ጴጥሮስ Russom=ሩሶም Simon=ስምኦን Teklit=ተኽሊት Tesfalem=ተስፋኣለም
        Tesfamariam=ተስፋማርያም Tewodros=ቴዎድሮስ Yemane=የማነ Yosief/Yosef=ዮሴፍ Zerom=ዘሮም""",
    ("eritrean", "female"): """
        Almaz=ኣልማዝ Aster=ኣስቴር Azieb=ኣዚብ Betelhem=ቤተልሄም Elsa=ኤልሳ Eyerusalem=ኢየሩሳሌም Fiori=ፍዮሪ Genet=ገነት Hana=ሃና
        Kidan=ኪዳን Lula=ሉላ Meaza=መዓዛ Milen=ሚለን Nardos=ናርዶስ Rigat=ርግኣት Rodas=ሮዳስ Ruth=ሩት Salina=ሳሊና Soliana=ሶልያና
        Tigist=ትዕግስቲ Tsion=ጽዮን Yohana=ዮሃና Yodit=ዮዲት Zufan=ዙፋን Meron=ሜሮን""",
    ("congolese", "male"): """
        Aime/Aimé Alain Arsene/Arsène Blaise Cedric/Cédric Claude Eric Fabrice Gedeon/Gédéon Guy Hugues Innocent
        Jacques Jeremie/Jérémie Junior Kevin Laurent Luc Mardochee/Mardochée Olivier Papy Pascal Placide Rodrigue
        Serge Sylvain Thierry Yannick""",
    ("congolese", "female"): """
        Anuarite Beatrice/Béatrice Bijou Carine Clarisse Dorcas Elodie/Élodie Fanny Furaha Gisele/Gisèle Irene/Irène
        Jolie Josephine/Joséphine Julienne Lydie Mamie Nathalie Neema Odette Patience Prisca Rebecca Solange Sylvie
        Vanessa""",
    ("congolese", "family"): """
        Amisi Bahati Bisimwa Byamungu Kabamba Kitenge Lubala Lumbala Mapendo Mbayo Mpoyi/Mpoy Muhindo Mukeba Musau
        Mutamba Ndaya Nzuzi Pembe Shabani Umba Wembo Kazadi Kabeya Mbuyamba Kasongo_Ngoy Paluku Kambere""",
    ("swahili", "male"): """
        Ally/Ali Bahati Daudi Hamadi Haruna Idd/Idi Jabiri Kassim/Kasimu Khalfani Makame Mbaraka Mohamedi/Muhamedi
        Mrisho Mwinyi Nassoro/Nasoro Rajabu Selemani/Suleimani Swalehe Yahaya Zuberi""",
    ("swahili", "female"): """
        Aziza Chausiku Hadija/Khadija Hawa Jamila Kulwa Mwamini Mwanahawa Mwanaidi Nasra Rukia Salma Shukuru
        Sikudhani Tabu Waridi Zainabu/Zaina Zuena""",
    ("hausa", "male"): """
        Abdullahi/Abdoulahi Adamu Ahmadu Auwal/Awwal Bashir Danladi Dauda Habibu Hamza Hassan Inuwa Isa/Issa
        Jibrin/Djibrine Lawan Mahmud Mamuda Mansur Mustapha Nuhu Rabiu/Rabiou Sadiq Salisu/Salissou Tijjani/Tidjani
        Usaini Yakubu/Yacouba Zakari Zubairu""",
    ("hausa", "female"): """
        Asmau/Asma'u Balaraba Dije Fatsuma Gambo Hajara Hindatu Indo Jummai Kaltume Ladidi Maimuna/Maimouna Nafisa
        Rakiya Sadiya Talatu Umma Yelwa Zuwaira""",
}
TAIL_SHARE = 0.3


def _tail_entries(tradition: str, text: str, weight: float, known: set[str]) -> list[NameEntry]:
    """Entries from "Primary/variant=script form" tokens ("_" is a space); the form is
    Arabic or Ge'ez script."""
    entries = []
    for token in text.split():
        latin, _, arabic = token.partition("=")
        spellings = [w.replace("_", " ") for w in latin.split("/")]
        key = f"{tradition}:{spellings[0].lower()}"
        if key in known:
            continue
        known.add(key)
        form = arabic.replace("_", " ") or None
        geez = form if form and "\u1200" <= form[0] <= "\u137f" else None
        entries.append(NameEntry(key=key, primary=spellings[0], weight=weight, latin=tuple(dict.fromkeys(spellings)),
                                 arabic=None if geez else form, geez=geez))
    return entries


class NamePool:
    """Weighted choice among entries (the weights are name frequencies)."""

    def __init__(self, entries: tuple[NameEntry, ...]):
        self.entries = entries
        self.cum = list(itertools.accumulate(e.weight for e in entries))
        self.by_primary = {e.primary.lower(): e for e in entries}
        ranked = sorted(entries, key=lambda e: -e.weight)
        self.common = frozenset(e.key for e in ranked[:3])

    def pick(self, rng: random.Random, exclude: tuple[str, ...] = ()) -> NameEntry:
        for _attempt in range(20):
            entry = self.entries[bisect.bisect_right(self.cum, rng.random() * self.cum[-1])]
            if entry.key not in exclude:
                return entry
        return next(e for e in self.entries if e.key not in exclude)


# ---------------------------------------------------------------------------------
# Places: the demo locations plus a generated country > region > district > camp
# hierarchy. A code's parent is the code without its last segment.
# ---------------------------------------------------------------------------------

# country: (name, {region: (name, {district: [camps]})}); a region's "camps" key holds
# camps directly under the region (Zaatari and Azraq in the demo data).
PLACES = {
    "SO": ("Somalia", {
        "GE": ("Gedo", {"DOLOW": [], "LUUQ": [], "BELETHAWA": [], "GARBAHAREY": []}),
        "BY": ("Bay", {"BAIDOA": ["BAIDOA-IDP1", "BAIDOA-IDP2"], "BURHAKABA": [], "DINSOR": []}),
        "LJ": ("Lower Juba", {"KISMAYO": ["KISMAYO-IDP"], "AFMADOW": []}),
        "BN": ("Banadir", {"MOGADISHU": ["KAXDA", "DAYNILE"]}),
        "HI": ("Hiraan", {"BELETWEYNE": [], "BULOBURDE": []}),
    }),
    "ET": ("Ethiopia", {
        "SO": ("Somali Region", {"DOLLO": ["MELKADIDA", "KOBE", "HILAWEYN", "BURAMINO", "BOKOLMANYO"],
                                 "JIJIGA": ["KEBRIBEYAH", "AWBARRE", "SHEDER"]}),
        "GA": ("Gambella", {"ITANG": ["NGUENYYIEL", "KULE", "TIERKIDI", "JEWI"], "GAMBELLA": []}),
        "TI": ("Tigray", {"SHIRE": ["MAI-AINI", "ADI-HARUSH", "HITSATS", "SHIMELBA"]}),
    }),
    "KE": ("Kenya", {
        "GA": ("Garissa", {"DADAAB": ["DAGAHALEY", "IFO", "HAGADERA"]}),
        "TU": ("Turkana", {"KAKUMA": ["KAKUMA-1", "KAKUMA-4", "KALOBEYEI"]}),
    }),
    "JO": ("Jordan", {
        "MA": ("Mafraq", {"camps": ["ZAATARI"], "MAFRAQ": []}),
        "ZA": ("Zarqa", {"camps": ["AZRAQ"], "ZARQA": []}),
        "IR": ("Irbid", {"IRBID": [], "RAMTHA": []}),
        "AM": ("Amman", {"AMMAN": []}),
    }),
    "SY": ("Syria", {
        "AL": ("Aleppo", {"ALEPPO": [], "AZAZ": ["AZAZ-CAMPS"], "ALBAB": []}),
        "DA": ("Daraa", {"DARAA": [], "IZRA": [], "BUSRA": []}),
        "HO": ("Homs", {"HOMS": [], "RASTAN": []}),
        "HA": ("Hasakah", {"QAMISHLI": [], "HASAKAH": ["AL-HOL"]}),
    }),
    "IQ": ("Iraq", {
        "DU": ("Duhok", {"DUHOK": ["DOMIZ", "SHARYA", "KHANKE"], "ZAKHO": []}),
        "NI": ("Ninewa", {"MOSUL": [], "SINJAR": []}),
        "ER": ("Erbil", {"ERBIL": ["KAWERGOSK", "DARASHAKRAN"]}),
    }),
    "SD": ("Sudan", {
        "WD": ("West Darfur", {"GENEINA": [], "KULBUS": [], "KREINIK": []}),
        "ND": ("North Darfur", {"ELFASHER": ["ZAMZAM"], "KUTUM": []}),
    }),
    "TD": ("Chad", {
        "OU": ("Ouaddai", {"ADRE": ["ADRE-SITE"], "ASSOUNGHA": ["FARCHANA", "TREGUINE", "BREDJING", "GAGA"]}),
    }),
    "SS": ("South Sudan", {
        "UN": ("Upper Nile", {"MABAN": ["DORO", "KAYA", "YUSUF-BATIL", "GENDRASSA"], "MALAKAL": ["MALAKAL-POC"]}),
        "JG": ("Jonglei", {"BOR": [], "AKOBO": [], "NYIROL": []}),
        "UY": ("Unity", {"BENTIU": ["BENTIU-POC"], "LEER": [], "MAYOM": []}),
    }),
    "UG": ("Uganda", {
        "SW": ("South West", {"ISINGIRO": ["NAKIVALE"], "KIKUUBE": ["KYANGWALI"]}),
        "WN": ("West Nile", {"ADJUMANI": ["NYUMANZI", "AGOJO"], "YUMBE": ["BIDIBIDI"]}),
    }),
    "ER": ("Eritrea", {
        "MA": ("Maekel", {"ASMARA": []}),
        "DE": ("Debub", {"MENDEFERA": [], "ADIKEYIH": []}),
        "GB": ("Gash-Barka", {"BARENTU": [], "TESSENEY": []}),
    }),
    "AF": ("Afghanistan", {
        "KB": ("Kabul", {"KABUL": []}),
        "HR": ("Herat", {"HERAT": [], "INJIL": []}),
        "NG": ("Nangarhar", {"JALALABAD": [], "BEHSUD": []}),
        "KD": ("Kunduz", {"KUNDUZ": []}),
    }),
    "PK": ("Pakistan", {
        "KP": ("Khyber Pakhtunkhwa", {"PESHAWAR": ["SHAMSHATU", "KACHAGARHI"], "NOWSHERA": ["AZAKHEL"]}),
        "BA": ("Balochistan", {"QUETTA": ["SURKHAB"]}),
    }),
    "CD": ("Democratic Republic of the Congo", {
        "NK": ("North Kivu", {"GOMA": ["BULENGO", "LUSHAGALA", "KANYARUCHINYA"], "RUTSHURU": [], "MASISI": [],
                               "BENI": []}),
        "SK": ("South Kivu", {"UVIRA": [], "FIZI": [], "BUKAVU": []}),
        "IT": ("Ituri", {"BUNIA": ["BUNIA-SITE"], "DJUGU": []}),
        "KN": ("Kinshasa", {"KINSHASA": []}),
    }),
    "TZ": ("Tanzania", {
        "KG": ("Kigoma", {"KASULU": ["NYARUGUSU"], "KIBONDO": ["NDUTA"]}),
    }),
    "NG": ("Nigeria", {
        "BO": ("Borno", {"MAIDUGURI": ["DALORI", "BAKASSI"], "BAMA": []}),
        "KT": ("Katsina", {"KATSINA": [], "JIBIA": []}),
        "ZA": ("Zamfara", {"GUSAU": [], "ANKA": []}),
    }),
    "NE": ("Niger", {
        "MR": ("Maradi", {"MARADI": ["GARIN-KAKA"], "GUIDAN": []}),
        "DF": ("Diffa", {"DIFFA": ["SAYAM-FORAGE"]}),
    }),
}

FRANCOPHONE = frozenset({"TD", "NE", "CD"})


@dataclass(frozen=True)
class Place:
    code: str
    parent: str | None
    type: str
    name: str


def _title(segment: str) -> str:
    return " ".join(w.capitalize() for w in segment.replace("-", " ").split())


def build_places() -> dict[str, Place]:
    """Every place, demo locations first (their codes, names and parents kept)."""
    places: dict[str, Place] = {}
    with DEMO_LOCATIONS.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            places[row["code"]] = Place(row["code"], row["parent_code"] or None, row["type"], row["name_en"])

    def add(code: str, parent: str | None, type_: str, name: str) -> None:
        places.setdefault(code, Place(code, parent, type_, name))

    for country, (cname, regions) in PLACES.items():
        add(country, None, "country", cname)
        for region, (rname, districts) in regions.items():
            rcode = f"{country}-{region}"
            add(rcode, country, "region", rname)
            for district, camps in districts.items():
                if district == "camps":
                    for camp in camps:
                        add(f"{rcode}-{camp}", rcode, "camp", _title(camp) + " camp")
                    continue
                dcode = f"{rcode}-{district}"
                add(dcode, rcode, "district", _title(district))
                for camp in camps:
                    add(f"{dcode}-{camp}", dcode, "camp", _title(camp) + " camp")
    return places


def locations_csv(places: dict[str, Place]) -> str:
    """The places in the format of forms/config/demo_locations.csv (for import_locations_csv)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["code", "parent_code", "type", "name_en"])
    for place in places.values():
        writer.writerow([place.code, place.parent or "", place.type, place.name])
    return out.getvalue()


# ---------------------------------------------------------------------------------
# Traditions
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tradition:
    key: str
    share: float  # of families
    structure: str  # chain | family | afghan | congolese
    male: NamePool
    female: NamePool
    family: NamePool | None
    nationality: str
    languages: tuple[tuple[str, ...], ...]
    religion: tuple[str, ...]
    ethnicity: tuple[tuple[str, ...], ...]  # each: spellings of one group, most common first
    homes: tuple[str, ...]  # location prefixes where families live
    hosts: tuple[str, ...]  # location prefixes where children are registered
    script: str | None = None  # "ar" or "ge": writers may use it
    script_share: float = 0.0  # share of traces written in it
    nicknames: tuple[str, ...] = ()
    somali_style: float = 0.0  # share of writers using Somali orthography


def _pool(tradition: str, text: str, kind: str) -> NamePool:
    """The tradition's names of one kind (male, female, family): the listed names with
    their frequencies, and the rarer names of TAILS sharing TAIL_SHARE of the total."""
    head = _parse_entries(tradition, text)
    tail_text = TAILS.get((tradition, kind), "")
    head_total = sum(e.weight for e in head)
    n_tail = len(tail_text.split())
    weight = TAIL_SHARE / (1 - TAIL_SHARE) * head_total / n_tail if n_tail else 0.0
    tail = _tail_entries(tradition, tail_text, weight, {e.key for e in head})
    return NamePool(head + tuple(tail))


def _tradition(key: str, share: float, structure: str, male: str, female: str, family: str | None = None,
               **rest) -> Tradition:
    return Tradition(key, share, structure, _pool(key, male, "male"), _pool(key, female, "female"),
                     _pool(key, family, "family") if family else None, **rest)


TRADITIONS: tuple[Tradition, ...] = (
    _tradition("somali", 0.26, "chain", SOMALI_MALE, SOMALI_FEMALE, nationality="somali",
               languages=(("somali",), ("somali", "arabic")), religion=("islam",),
               ethnicity=(("Somali", "Soomaali"),), homes=("SO-GE", "SO-BY", "SO-LJ", "SO-BN", "SO-HI"),
               hosts=("ET-SO", "KE-GA", "SO-BY", "SO-BN"), script="ar", script_share=0.03,
               nicknames=tuple(SOMALI_NICKNAMES.split()), somali_style=0.3),
    _tradition("syrian", 0.14, "family", SYRIAN_MALE, SYRIAN_FEMALE, SYRIAN_FAMILY, nationality="syrian",
               languages=(("arabic",),), religion=("islam", "islam", "christianity"),
               ethnicity=(("Arab", "Arabic"),), homes=("SY-AL", "SY-DA", "SY-HO"),
               hosts=("JO-MA", "JO-ZA", "JO-IR", "SY-AL-AZAZ"), script="ar", script_share=0.25,
               nicknames=("Hamoudi", "Abboud", "Lulu", "Mimi", "Dodo")),
    _tradition("sudanese", 0.10, "chain", SUDANESE_MALE, SUDANESE_FEMALE, nationality="sudanese",
               languages=(("arabic",),), religion=("islam",),
               ethnicity=(("Masalit", "Massalit"), ("Fur", "Four"), ("Zaghawa", "Zaghaoua"), ("Arab", "Arabe")),
               homes=("SD-WD", "SD-ND"), hosts=("TD-OU", "SD-ND-ELFASHER"), script="ar", script_share=0.15),
    _tradition("afghan", 0.10, "afghan", AFGHAN_MALE, AFGHAN_FEMALE, AFGHAN_FAMILY, nationality="afghan",
               languages=(("dari",), ("pashto",), ("dari", "pashto")), religion=("islam",),
               ethnicity=(("Pashtun", "Pashtoon", "Pakhtun"), ("Tajik", "Tadjik"), ("Hazara", "Hazarah")),
               homes=("AF-KB", "AF-HR", "AF-NG", "AF-KD"), hosts=("PK-KP", "PK-BA", "AF-HR", "AF-KB"),
               script="ar", script_share=0.2, nicknames=("Jan", "Gul", "Agha")),
    _tradition("kurdish", 0.03, "family", KURDISH_MALE, KURDISH_FEMALE, KURDISH_FAMILY, nationality="iraqi",
               languages=(("kurdish",), ("kurdish", "arabic")), religion=("islam", "islam", "other"),
               ethnicity=(("Kurd", "Kurdish"), ("Yazidi", "Ezidi", "Yezidi")), homes=("IQ-NI", "SY-HA"),
               hosts=("IQ-DU", "IQ-ER"), script="ar", script_share=0.15),
    _tradition("south_sudanese", 0.12, "chain", SOUTH_SUDANESE_MALE, SOUTH_SUDANESE_FEMALE,
               nationality="south_sudanese",
               languages=(("nuer",), ("dinka",), ("nuer", "arabic"), ("dinka", "english")),
               religion=("christianity", "christianity", "traditional"),
               ethnicity=(("Nuer", "Naath"), ("Dinka", "Jieng")), homes=("SS-JG", "SS-UY", "SS-UN-MALAKAL"),
               hosts=("ET-GA", "UG-WN", "KE-TU", "SS-UN-MABAN")),
    _tradition("eritrean", 0.07, "chain", ERITREAN_MALE, ERITREAN_FEMALE, nationality="eritrean",
               languages=(("tigrinya",),), religion=("christianity", "christianity", "islam"),
               ethnicity=(("Tigrinya", "Tigrigna", "Tigray"),), homes=("ER-MA", "ER-DE", "ER-GB"),
               hosts=("ET-TI",), script="ge", script_share=0.15),
    _tradition("congolese", 0.09, "congolese", CONGOLESE_MALE, CONGOLESE_FEMALE, CONGOLESE_FAMILY,
               nationality="congolese_drc", languages=(("lingala", "french"), ("swahili", "french"), ("lingala",)),
               religion=("christianity",),
               ethnicity=(("Luba", "Baluba"), ("Nande", "Banande"), ("Hunde", "Bahunde"), ("Kongo", "Bakongo")),
               homes=("CD-NK", "CD-IT", "CD-KN"), hosts=("UG-SW", "CD-NK-GOMA"),
               nicknames=("Papy", "Bijou", "Junior", "Mado", "Fifi", "Dodo")),
    _tradition("swahili", 0.04, "chain", SWAHILI_MALE, SWAHILI_FEMALE, nationality="congolese_drc",
               languages=(("swahili",), ("swahili", "french")), religion=("islam", "christianity"),
               ethnicity=(("Bembe", "Babembe"), ("Fuliiru", "Bafuliiru"), ("Shi", "Bashi")), homes=("CD-SK",),
               hosts=("TZ-KG", "CD-SK-UVIRA")),
    _tradition("hausa", 0.05, "chain", HAUSA_MALE, HAUSA_FEMALE, nationality="other",
               languages=(("hausa",), ("hausa", "english"), ("hausa", "french")), religion=("islam",),
               ethnicity=(("Hausa", "Haoussa"), ("Fulani", "Peul", "Fula"), ("Kanuri", "Kanouri")),
               homes=("NG-BO", "NG-KT", "NG-ZA"), hosts=("NE-MR", "NE-DF", "NG-BO-MAIDUGURI")),
)
TRADITION_CUM = list(itertools.accumulate(t.share for t in TRADITIONS))
TWIN_NAMES = {"male": ("hassan", "hussein"), "female": ("fatima", "zahra")}
RELATIONS = (("mother", 0.36), ("father", 0.24), ("aunt_uncle", 0.16), ("grandparent", 0.1),
             ("sibling", 0.1), ("other", 0.04))

# ---------------------------------------------------------------------------------
# Writing names down: spelling choice, typos, scripts
# ---------------------------------------------------------------------------------

_KEY_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_ADJACENT: dict[str, str] = {}
for _r, _row in enumerate(_KEY_ROWS):
    for _i, _ch in enumerate(_row):
        near = [_row[j] for j in (_i - 1, _i + 1) if 0 <= j < len(_row)]
        for _other in (_r - 1, _r + 1):
            if 0 <= _other < len(_KEY_ROWS):
                near += [_KEY_ROWS[_other][j] for j in (_i - 1, _i) if 0 <= j < len(_KEY_ROWS[_other])]
        _ADJACENT[_ch] = "".join(near)


def typo(word: str, rng: random.Random) -> str:
    """One keyboard slip: an adjacent key, a dropped, doubled or swapped letter."""
    letters = [i for i, ch in enumerate(word) if ch.isalpha() and ch.lower() in _ADJACENT]
    if len(word) < 4 or len(letters) < 3:
        return word
    i = rng.choice(letters[1:])  # the first letter is usually right
    kind = rng.random()
    if kind < 0.35:
        ch = word[i]
        sub = rng.choice(_ADJACENT[ch.lower()])
        return word[:i] + (sub.upper() if ch.isupper() else sub) + word[i + 1:]
    if kind < 0.6:
        return word[:i] + word[i + 1:]
    if kind < 0.8:
        return word[:i] + word[i] + word[i:]
    if i + 1 < len(word) and word[i + 1].isalpha():
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    return word[:i] + word[i:i + 1] * 2 + word[i + 1:]


def fold(text: str) -> str:
    """Letters only, lower case, no accents: to tell whether two spellings differ."""
    text = unicodedata.normalize("NFKD", text.casefold())
    return "".join(ch for ch in text if ch.isalpha() and not unicodedata.combining(ch))


@dataclass(frozen=True)
class Writer:
    """A person writing names down: a caseworker or a tracing officer."""

    style: str  # en | fr | so
    script: str | None = None  # "ar" / "ge" when this writer uses that script


def spell(entry: NameEntry, writer: Writer, rng: random.Random) -> str:
    """How this writer spells this name."""
    if writer.style == "so" and entry.somali and rng.random() < 0.85:
        return rng.choice(entry.somali)
    if writer.style == "fr" and entry.french and rng.random() < 0.75:
        return rng.choice(entry.french)
    if len(entry.latin) == 1 or rng.random() < 0.55:
        return entry.latin[0]
    return rng.choice(entry.latin[1:])


def _script_form(entry: NameEntry, script: str) -> str | None:
    return entry.arabic if script == "ar" else entry.geez


def _has_article(spelling: str) -> bool:
    f = spelling.casefold()
    return f.startswith(("al-", "al ", "el-", "el ")) or (f.startswith("al") and len(f) > 6 and f[2] not in "aeiou")


def _strip_article(spelling: str) -> str:
    if not _has_article(spelling):
        return spelling
    return spelling[3:] if spelling[2] in "- " else spelling[2:]


# ---------------------------------------------------------------------------------
# The simulated world
# ---------------------------------------------------------------------------------


@dataclass
class Child:
    sex: str
    given: NameEntry
    dob: dt.date
    nickname: str | None
    twin: bool = False
    postnom: NameEntry | None = None  # Congolese: a personal second name
    registered: bool = False
    case_id: str | None = None
    consent: bool = True


@dataclass
class Family:
    tradition: Tradition
    father: NameEntry
    grandfather: NameEntry
    great_grandfather: NameEntry
    family_name: NameEntry | None
    mother: NameEntry
    mother_father: NameEntry
    mother_family: NameEntry | None
    uncle: NameEntry
    home: str  # place code
    separation_site: str
    separation_date: dt.date
    host: str  # where the children are (registered)
    ethnicity: tuple[str, ...]
    languages: tuple[str, ...]
    religion: str
    children: list[Child] = field(default_factory=list)
    group: int = 0  # extended family (cousins share it)


@dataclass
class CaseRecord:
    source_id: str
    registered_on: dt.date
    data: dict


@dataclass
class TraceRecord:
    source_id: str
    data: dict
    case_source_id: str | None  # the truth: which case is this child (None: never registered)
    tags: list[str]
    identity: tuple[str, ...]  # (tradition, sex, given, father, grandfather or family): namesakes share it


@dataclass
class TracingRequestRecord:
    source_id: str
    data: dict
    traces: list[TraceRecord]


@dataclass
class Batch:
    """What one extended family adds: its cases and its tracing requests."""

    cases: list[CaseRecord]
    requests: list[TracingRequestRecord]


def form_keys(config_path: Path = DEFAULT_CONFIG) -> dict[str, set[str]]:
    """Top-level field keys of each record type, with the companion "<date>_approximate"
    keys of dates that allow them, and subform field keys as "subform.key"."""
    config = json.loads(config_path.read_text(encoding="utf-8"))
    keys: dict[str, set[str]] = {}
    for form in config["forms"]:
        found = keys.setdefault(form["record_type"], set())
        for section in form.get("sections", []):
            for item in section.get("fields", []):
                found.add(item["key"])
                if item.get("type") == "date" and item.get("is_approximate_allowed"):
                    found.add(item["key"] + "_approximate")
                for sub in item.get("subfields", []) or []:
                    found.add(f"{item['key']}.{sub['key']}")
    return keys


class Generator:
    """Deterministic generator of cases, tracing requests and traces.

    ``batches()`` streams :class:`Batch` objects (one extended family each, plus
    trace-only families for children who were never registered) until exactly
    ``cases`` cases and ``traces`` traces have been produced. ``finish()`` then adds the
    tags that depend on the whole data set (namesakes) and returns the truth rows.
    """

    UNREGISTERED_SHARE = 0.15  # of traces: the child was never registered
    CONSENT = 0.96  # cases with consent for tracing

    def __init__(self, cases: int, traces: int, seed: int = 1, config_path: Path = DEFAULT_CONFIG):
        if cases < 1 or traces < 0:
            raise ValueError("need at least one case and no negative number of traces")
        self.n_cases, self.n_traces, self.seed = cases, traces, seed
        self.rng = random.Random(f"matching-bench:{seed}")
        self.places = build_places()
        self.children_of: dict[str, list[str]] = {}
        for place in self.places.values():
            if place.parent:
                self.children_of.setdefault(place.parent, []).append(place.code)
        self.keys = form_keys(config_path)
        self.n_matched = min(round(traces * (1 - self.UNREGISTERED_SHARE)), cases)
        self.n_unregistered = traces - self.n_matched
        self.cases_out = self.traces_out = self.matched_out = self.unregistered_out = 0
        self._ids: set[str] = set()
        self._group = 0
        self.identities: Counter[tuple[str, ...]] = Counter()  # identity -> number of cases
        self.truth: list[TraceRecord] = []

    # --- small helpers ---------------------------------------------------------------

    def _id(self, prefix: str) -> str:
        while True:
            value = f"{prefix}-{self.rng.getrandbits(48):012x}"
            if value not in self._ids:
                self._ids.add(value)
                return value

    def _chance(self, p: float) -> bool:
        return self.rng.random() < p

    def _leaf(self, prefix: str) -> str:
        """A random lowest-level place under `prefix` (a camp, or a district without camps)."""
        code = prefix
        while self.children_of.get(code):
            code = self.rng.choice(self.children_of[code])
        return code

    def _date_between(self, start: dt.date, end: dt.date) -> dt.date:
        if end <= start:
            return start
        return start + dt.timedelta(days=self.rng.randrange((end - start).days + 1))

    @staticmethod
    def _age_on(dob: dt.date, day: dt.date) -> int:
        return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))

    def _writer(self, tradition: Tradition, place: str, script_share: float = 0.0) -> Writer:
        country = place.split("-", 1)[0]
        if country in FRANCOPHONE and self._chance(0.75):
            style = "fr"
        elif tradition.somali_style and self._chance(tradition.somali_style):
            style = "so"
        else:
            style = "en"
        script = tradition.script if tradition.script and self._chance(script_share) else None
        return Writer(style, script)

    def _place_as_told(self, site: str) -> tuple[str | None, str]:
        """How someone reports a place: (code or None, how) with how in exact/up/wrong/missing."""
        roll = self.rng.random()
        if roll < 0.05:
            return None, "missing"
        if roll < 0.08:
            parent = self.places[site].parent
            siblings = [c for c in self.children_of.get(parent, []) if c != site] if parent else []
            if siblings:
                return self.rng.choice(siblings), "wrong"
        if roll < 0.58:
            return site, "exact"
        code = site
        for _ in range(1 if roll < 0.88 else 2):
            parent = self.places[code].parent
            if parent and self.places[parent].type != "country":
                code = parent
        return code, "exact" if code == site else "up"

    # --- the world -------------------------------------------------------------------

    def _tradition(self) -> Tradition:
        return TRADITIONS[bisect.bisect_right(TRADITION_CUM, self.rng.random() * TRADITION_CUM[-1])]

    def _family(self, tradition: Tradition, grandfather: NameEntry | None = None,
                great_grandfather: NameEntry | None = None, family_name: NameEntry | None = None,
                home: str | None = None, exclude_fathers: tuple[str, ...] = ()) -> Family:
        rng = self.rng
        male = tradition.male
        grandfather = grandfather or male.pick(rng)
        great_grandfather = great_grandfather or male.pick(rng, (grandfather.key,))
        father = male.pick(rng, (grandfather.key, *exclude_fathers))
        if tradition.family is not None and family_name is None:
            family_name = tradition.family.pick(rng) if tradition.structure != "afghan" or self._chance(0.6) else None
        mother = tradition.female.pick(rng)
        home = home or self._leaf(rng.choice(tradition.homes))
        separation_date = self._date_between(FIRST_SEPARATION, AS_OF - dt.timedelta(days=30))
        # Separated at home (attack, flight) or on the way / in a camp.
        separation_site = home if self._chance(0.7) else self._leaf(rng.choice(tradition.hosts))
        family = Family(
            tradition=tradition, father=father, grandfather=grandfather, great_grandfather=great_grandfather,
            family_name=family_name, mother=mother, mother_father=male.pick(rng),
            mother_family=tradition.family.pick(rng) if tradition.family is not None else None,
            uncle=male.pick(rng, (father.key, grandfather.key)), home=home, separation_site=separation_site,
            separation_date=separation_date, host=self._leaf(rng.choice(tradition.hosts)),
            ethnicity=rng.choice(tradition.ethnicity), languages=rng.choice(tradition.languages),
            religion=rng.choice(tradition.religion), group=self._group)
        self._add_children(family)
        return family

    def _add_children(self, family: Family) -> None:
        rng = self.rng
        count = min(1 + int(rng.expovariate(1 / 1.6)), 7)
        oldest_age = rng.randint(max(count - 1, 1), 16)
        used: list[str] = []
        age = oldest_age
        twins_at = rng.randrange(count) if self._chance(0.05) else None
        for index in range(count):
            sex = rng.choice(("male", "female"))
            dob_age_days = int(age * 365.25) + rng.randrange(365)
            dob = family.separation_date - dt.timedelta(days=dob_age_days)
            pool = family.tradition.male if sex == "male" else family.tradition.female
            given = pool.pick(rng, tuple(used) + ((family.father.key, family.grandfather.key) if sex == "male"
                                                  else ()))
            nickname = rng.choice(family.tradition.nicknames) if family.tradition.nicknames and self._chance(
                0.15) else None
            family.children.append(Child(sex, given, dob, nickname, postnom=self._postnom(family)))
            used.append(given.key)
            if index == twins_at:
                twin_sex = sex if self._chance(0.65) else ("female" if sex == "male" else "male")
                twin_pool = family.tradition.male if twin_sex == "male" else family.tradition.female
                names = TWIN_NAMES[twin_sex]
                twin_given = None
                if sex == twin_sex and given.primary.lower() in names and self._chance(0.6):
                    other = names[1 - names.index(given.primary.lower())]
                    twin_given = twin_pool.by_primary.get(other)
                twin_given = twin_given or twin_pool.pick(rng, tuple(used))
                family.children[-1].twin = True
                family.children.append(Child(twin_sex, twin_given, dob, None, twin=True,
                                             postnom=self._postnom(family)))
                used.append(twin_given.key)
            age -= rng.randint(1, 4)
            if age < 0:
                break

    def _postnom(self, family: Family) -> NameEntry | None:
        t = family.tradition
        if t.structure != "congolese" or t.family is None:
            return None
        return t.family.pick(self.rng, (family.family_name.key,) if family.family_name else ())

    def _extended_family(self) -> list[Family]:
        """One family, or two or three brothers' families (cousins share the grandfather)."""
        tradition = self._tradition()
        first = self._family(tradition)
        families = [first]
        if self._chance(0.12):
            for _ in range(self.rng.randint(1, 2)):
                home = first.home if self._chance(0.7) else None
                brother = self._family(tradition, first.grandfather, first.great_grandfather, first.family_name,
                                       home, tuple(f.father.key for f in families))
                families.append(brother)
        self._group += 1
        return families

    # --- writing records -------------------------------------------------------------

    def _name_fields(self, family: Family, child: Child, writer: Writer, side: str,
                     tags: set[str], chosen: dict[str, str]) -> dict[str, str]:
        """The child's name fields as one writer records them; `chosen` collects the
        spelling picked for each name entry (to tell later whether both sides differ)."""
        rng = self.rng
        t = family.tradition

        def sp(entry: NameEntry, role: str) -> str:
            value = chosen[role] = spell(entry, writer, rng)
            return value

        given = sp(child.given, "given")
        father = sp(family.father, "father")
        grandfather = sp(family.grandfather, "grandfather")
        family_name = sp(family.family_name, "family") if family.family_name else None
        first, middle, last = given, "", ""
        if t.structure == "chain":
            roll = rng.random()
            if roll < 0.62:
                middle, last = father, grandfather
            elif roll < 0.77:
                last = f"{father} {grandfather}"
            elif roll < 0.92:
                last = father
                tags.add(f"{side}:chain2")
            else:
                middle, last = father, f"{grandfather} {sp(family.great_grandfather, 'great_grandfather')}"
                tags.add(f"{side}:chain4")
        elif t.structure == "family":
            middle = father if self._chance(0.55) else ""
            last = family_name or grandfather
        elif t.structure == "afghan":
            middle = father if family_name and self._chance(0.5) else ""
            last = family_name or father
        else:  # congolese: prenom + postnom (personal) + nom (the family's)
            middle = sp(child.postnom, "postnom") if child.postnom and self._chance(0.6) else ""
            last = family_name or father
        return {"name_first": first, "name_middle": middle, "name_last": last}

    def _slip(self, names: dict[str, str]) -> bool:
        """One typing slip in one word of the name fields; False if nothing changed."""
        words = [(key, w) for key, value in names.items() for w in value.split() if len(w) >= 4]
        if not words:
            return False
        key, word = self.rng.choice(words)
        slipped = typo(word, self.rng)
        if slipped == word:
            return False
        parts = names[key].split()
        parts[parts.index(word)] = slipped
        names[key] = " ".join(parts)
        return True

    def _person_name(self, entries: list[NameEntry], writer: Writer) -> str:
        if writer.script:
            forms = [_script_form(e, writer.script) for e in entries]
            if all(forms):
                return " ".join(forms)  # type: ignore[arg-type]
        return " ".join(spell(e, writer, self.rng) for e in entries)

    def _mother_name(self, family: Family, writer: Writer) -> str:
        second = family.mother_family if family.mother_family and family.tradition.structure != "chain" else \
            family.mother_father
        parts = [family.mother, second]
        if family.tradition.structure == "chain" and self._chance(0.3):
            parts = [family.mother]
        return self._person_name(parts, writer)

    def _father_name(self, family: Family, writer: Writer) -> str:
        if family.tradition.structure == "chain":
            parts = [family.father, family.grandfather] + ([family.great_grandfather] if self._chance(0.4) else [])
        elif family.family_name:
            parts = [family.father, family.family_name]
        else:
            parts = [family.father, family.grandfather]
        return self._person_name(parts, writer)

    def _apply_script(self, family: Family, child: Child, fields: dict[str, str], script: str) -> bool:
        """Rewrite the name fields in a non-Latin script, if every part has a form in it."""
        mapping = {}
        for entry in (child.given, family.father, family.grandfather, family.great_grandfather,
                      family.family_name, child.postnom):
            if entry is None:
                continue
            form = _script_form(entry, script)
            if form is None:
                return False
            for latin in (*entry.latin, *entry.somali, *entry.french):
                mapping[fold(latin)] = form
        out = {}
        for key, value in fields.items():
            if not value:
                out[key] = value
                continue
            words = []
            for word in value.split(" "):
                form = mapping.get(fold(word))
                if form is None:
                    # compound spelled in two words ("Abdul Rahman"): use the whole entry form
                    return False
                words.append(form)
            out[key] = " ".join(words)
        fields.update(out)
        return True

    def _case(self, family: Family, child: Child, siblings: list[Child], case_tags: set[str],
              chosen: dict[str, str]) -> CaseRecord:
        rng = self.rng
        t = family.tradition
        delay_roll = rng.random()
        if delay_roll < 0.5:
            delay = rng.randint(0, 60)
        elif delay_roll < 0.8:
            delay = rng.randint(61, 365)
        else:
            delay = rng.randint(366, 4 * 365)
        room = (AS_OF - family.separation_date).days
        if delay > room:
            delay = self.rng.randint(0, room)
        registered = family.separation_date + dt.timedelta(days=delay)
        true_age = self._age_on(child.dob, registered)
        writer = self._writer(t, family.host, script_share=0.03 if t.script == "ar" else 0.0)
        names = self._name_fields(family, child, writer, "case", case_tags, chosen)
        if true_age < 5 and self._chance(0.5):
            names["name_middle"] = names["name_last"] = ""  # a small child knows only its own name
        elif self._chance(0.04):
            names["name_middle"] = names["name_last"] = ""
        if child.given.short and self._chance(0.05):
            names["name_first"] = rng.choice(child.given.short)
            case_tags.add("case:short")
        if self._chance(0.04) and self._slip(names):
            case_tags.add("case:typo")
        if writer.script and self._apply_script(family, child, names, writer.script):
            case_tags.add("case:script")
        data: dict = {k: v for k, v in names.items() if v}
        if child.nickname and self._chance(0.5):
            data["name_nickname"] = child.nickname
        if t.script == "ar" and "case:script" not in case_tags and self._chance(0.05):
            other = self._person_name([child.given, family.father], Writer("en", "ar"))
            if any("\u0600" <= ch <= "\u06ff" for ch in other):
                data["name_other"] = other
        data["sex"] = child.sex if not self._chance(0.005) else "unknown"
        # Date of birth and age: exact when known, an estimate otherwise.
        roll = rng.random()
        if roll < 0.35:
            data["date_of_birth"] = child.dob.isoformat()
            data["age"] = true_age
        else:
            estimate = max(0, true_age + round(rng.gauss(0, 1.0)))
            if estimate >= 6 and self._chance(0.3):
                estimate = 5 * round(estimate / 5) if estimate >= 9 and self._chance(0.4) else 2 * round(estimate / 2)
            estimate = min(estimate, 17)
            data["age"] = estimate
            data["age_is_estimated"] = True
            if abs(estimate - true_age) >= 1:
                case_tags.add("case:age_off")
            if roll < 0.5:
                data["date_of_birth"] = dt.date(registered.year - estimate, 1, 1).isoformat()
                data["date_of_birth_approximate"] = True
        if self._chance(0.05):
            data.pop("age", None)
        data["nationality"] = t.nationality
        data["ethnicity"] = rng.choice(family.ethnicity)
        data["language"] = list(family.languages)
        data["religion"] = family.religion
        for key, share in (("nationality", 0.9), ("ethnicity", 0.6), ("language", 0.9), ("religion", 0.8)):
            if not self._chance(share):
                data.pop(key)
        data["location_current"] = family.host
        sep_code, how = self._place_as_told(family.separation_site)
        if sep_code:
            data["location_separation"] = sep_code
        case_tags.add(f"case:loc_{how}")
        chosen["_loc"] = sep_code or ""
        if self._chance(0.65):
            told = family.separation_date + dt.timedelta(days=rng.randint(-45, 45))
            if self._chance(0.5):
                data["date_of_separation"] = told.replace(day=1).isoformat()
                data["date_of_separation_approximate"] = True
            else:
                data["date_of_separation"] = min(told, registered).isoformat()
        case_writer = Writer(writer.style)
        if self._chance(0.6 if true_age >= 6 else 0.3):
            data["mother_name"] = self._mother_name(family, case_writer)
        if self._chance(0.65 if true_age >= 6 else 0.3):
            data["father_name"] = self._father_name(family, case_writer)
        if self._chance(0.4):
            if self._chance(0.4):
                data["caregiver_name"] = self._person_name([family.uncle, family.grandfather], case_writer)
            else:
                other = self._tradition()
                data["caregiver_name"] = self._person_name(
                    [other.female.pick(rng) if self._chance(0.6) else other.male.pick(rng), other.male.pick(rng)],
                    Writer(writer.style))
        details = []
        if self._chance(0.5):
            for sibling in siblings[:3]:
                details.append({"relation": "sibling",
                                "relation_name": spell(sibling.given, case_writer, rng),
                                "relation_age": max(0, self._age_on(sibling.dob, registered))})
            if self._chance(0.4):
                details.append({"relation": "aunt_uncle",
                                "relation_name": self._person_name([family.uncle, family.grandfather], case_writer),
                                "relation_is_alive": "yes", "relation_location": family.home})
            if "mother_name" in data and self._chance(0.3):
                details.append({"relation": "mother", "relation_name": data["mother_name"],
                                "relation_is_alive": rng.choice(("yes", "unknown"))})
        if details:
            for row in details:  # every stored subform row carries a stable id (forms.schemas.ROW_ID)
                row["_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            data["family_details"] = details
        data["consent_for_tracing"] = child.consent
        self._check_keys("case", data)
        return CaseRecord(child.case_id or "", registered, data)

    def _trace(self, family: Family, child: Child, inquiry: dt.date, relation: str, writer: Writer,
               chosen_case: dict[str, str] | None, case_data: dict | None, case_tags: set[str],
               tags: set[str]) -> dict:
        rng = self.rng
        t = family.tradition
        chosen: dict[str, str] = {}
        names = self._name_fields(family, child, writer, "trace", tags, chosen)
        # Corruptions a relative's account and a second writer bring.
        if self._chance(0.10):
            names["name_middle"] = names["name_last"] = ""
        if child.given.short and self._chance(0.12):
            names["name_first"] = rng.choice(child.given.short)
            tags.add("nickname_as_name")
        if names["name_last"] and self._chance(0.2 if t.structure == "congolese" else 0.07):
            names["name_first"], names["name_last"] = names["name_last"], names["name_first"]
            tags.add("swapped_names")
        typo_roll = rng.random()
        for _ in range(2 if typo_roll < 0.02 else 1 if typo_roll < 0.12 else 0):
            if self._slip(names):
                tags.add("typo")
        if "case:typo" in case_tags:
            tags.add("typo")
        scripted = bool(writer.script) and self._apply_script(family, child, names, writer.script)
        case_scripted = "case:script" in case_tags
        if scripted != case_scripted and chosen_case is not None:
            tags.add("arabic_script" if t.script == "ar" else "geez_script")
        data: dict = {k: v for k, v in names.items() if v}
        if not data.get("name_first"):
            data["name_first"] = spell(child.given, writer, rng)
        if child.nickname and self._chance(0.6):
            data["name_nickname"] = child.nickname
        # Compare the spellings both sides chose for the same names.
        if chosen_case is not None and case_data is not None and not (scripted or case_scripted):
            case_text = " ".join(case_data.get(k, "") for k in ("name_first", "name_middle", "name_last"))
            trace_text = " ".join(data.get(k, "") for k in ("name_first", "name_middle", "name_last"))
            for role, spelling in chosen.items():
                other = chosen_case.get(role)
                if other is None or other == spelling or spelling not in trace_text or other not in case_text:
                    continue
                a, b = (_strip_article(other), _strip_article(spelling)) if role == "family" else (other, spelling)
                if role == "family" and (_has_article(other) or _has_article(spelling)) and \
                        other.casefold()[:3] != spelling.casefold()[:3]:
                    tags.add("particle")  # Al-X / X / Alx / El-X
                if fold(a) != fold(b):
                    tags.add("variant_spelling")
                elif (" " in a.strip()) != (" " in b.strip()) or ("-" in a) != ("-" in b):
                    tags.add("compound_split")
        if case_data is not None:
            case_parts = sum(len(case_data.get(k, "").split()) for k in ("name_middle", "name_last"))
            trace_parts = sum(len(data.get(k, "").split()) for k in ("name_middle", "name_last"))
            if not case_parts or not trace_parts:
                tags.add("family_name_missing")
            elif case_parts != trace_parts and t.structure == "chain":
                tags.add("chain_truncated")
            if "case:short" in case_tags:
                tags.add("nickname_as_name")
        # Sex
        roll = rng.random()
        if roll < 0.015:
            data["sex"] = "unknown"
            tags.add("sex_unknown")
        elif roll < 0.019:
            data["sex"] = "female" if child.sex == "male" else "male"
            tags.add("sex_wrong")
        else:
            data["sex"] = child.sex
        if case_data is not None and case_data.get("sex") == "unknown":
            tags.add("sex_unknown")
        # Dates: what the relative remembers, with slips.
        told_separation = family.separation_date + dt.timedelta(days=rng.randint(-14, 14))
        told_separation = min(told_separation, inquiry)
        if self._chance(0.88):
            if self._chance(0.3):
                data["date_of_separation"] = told_separation.replace(day=1).isoformat()
                data["date_of_separation_approximate"] = True
            else:
                data["date_of_separation"] = told_separation.isoformat()
        if self._chance(0.45):
            dob = child.dob
            roll = rng.random()
            if roll < 0.08:
                if dob.day <= 12 and dob.day != dob.month:
                    dob = dob.replace(month=dob.day, day=dob.month)
                    tags.add("dob_day_month_swapped")
            elif roll < 0.12:
                text = dob.isoformat()
                positions = [i for i in (2, 3, 6, 9) if text[i].isdigit()]
                for _attempt in range(10):
                    i = rng.choice(positions)
                    candidate = text[:i] + str((int(text[i]) + rng.randint(1, 9)) % 10) + text[i + 1:]
                    try:
                        new = dt.date.fromisoformat(candidate)
                    except ValueError:
                        continue
                    if new <= inquiry and new != dob and abs(new.year - dob.year) <= 10:
                        dob = new
                        tags.add("dob_typo")
                        break
            elif roll < 0.16:
                dob = dob.replace(year=dob.year + rng.choice((-1, 1))) if not (dob.month == 2 and dob.day == 29) \
                    else dob
                if dob != child.dob:
                    tags.add("dob_year_off")
            data["date_of_birth"] = min(dob, inquiry).isoformat()
        if case_data is not None and (not data.get("date_of_birth") or not case_data.get("date_of_birth")):
            tags.add("dob_missing")
        if self._chance(0.9):
            if self._chance(0.1):
                data["age"] = max(0, self._age_on(child.dob, inquiry))
                if data["age"] != max(0, self._age_on(child.dob, family.separation_date)):
                    tags.add("age_at_inquiry")
            else:
                age = max(0, self._age_on(child.dob, family.separation_date))
                data["age"] = max(0, age + (rng.choice((-1, 1)) if self._chance(0.12) else 0))
        # Places
        sep_code, how = self._place_as_told(family.separation_site)
        if sep_code:
            data["location_separation"] = sep_code
        if self._chance(0.5):
            seen, _ = self._place_as_told(family.separation_site)
            if seen:
                data["location_last_seen"] = seen
        if case_data is not None:
            case_loc = chosen_case.get("_loc") if chosen_case else None
            hows = {how} | {tag.split("_", 1)[1] for tag in case_tags if tag.startswith("case:loc_")}
            if "wrong" in hows:
                tags.add("location_wrong")
            elif sep_code and case_loc and sep_code != case_loc:
                tags.add("location_level")
        data["nationality"] = t.nationality
        data["ethnicity"] = rng.choice(family.ethnicity)
        data["language"] = list(family.languages)
        for key, share in (("nationality", 0.75), ("ethnicity", 0.5), ("language", 0.7)):
            if not self._chance(share):
                data.pop(key)
        parent_writer = Writer(writer.style, writer.script if scripted else None)
        if relation != "mother" or self._chance(0.7):
            if self._chance(0.85):
                data["mother_name"] = self._mother_name(family, parent_writer)
        if self._chance(0.85):
            data["father_name"] = self._father_name(family, parent_writer)
        self._check_keys("trace", data)
        return data

    def _inquirer(self, family: Family, relation: str, writer: Writer) -> str:
        if relation == "mother":
            return self._mother_name(family, writer)
        if relation == "father":
            return self._father_name(family, writer)
        if relation == "aunt_uncle":
            return self._person_name([family.uncle, family.grandfather], writer)
        if relation == "grandparent":
            return self._person_name([family.grandfather, family.great_grandfather], writer)
        if relation == "sibling":
            pool = family.tradition.male if self._chance(0.5) else family.tradition.female
            return self._person_name([pool.pick(self.rng), family.father, family.grandfather], writer)
        other = self._tradition() if self._chance(0.3) else family.tradition
        return self._person_name([other.male.pick(self.rng), other.male.pick(self.rng)], writer)

    def _check_keys(self, record_type: str, data: dict) -> None:
        allowed = self.keys.get(record_type, set())
        for key in list(data):
            if key in allowed:
                continue
            if key.endswith("_approximate"):
                data.pop(key)  # this configuration keeps no approximate flag for that date
                continue
            raise KeyError(f"{record_type} field {key!r} is not in the form configuration")
        for row in data.get("family_details", []):
            for key in row:
                if key != "_id" and f"family_details.{key}" not in allowed:
                    raise KeyError(f"family_details field {key!r} is not in the form configuration")

    # --- streaming -------------------------------------------------------------------

    def batches(self) -> Iterator[Batch]:
        while self.cases_out < self.n_cases:
            yield self._batch(self._extended_family(), may_register=True)
            # Keep the never-registered traces in step with the cases.
            while self._unregistered_target() - self.unregistered_out > 2:
                yield self._batch(self._extended_family(), may_register=False)
        while self.unregistered_out < self.n_unregistered:
            yield self._batch(self._extended_family(), may_register=False)

    def _unregistered_target(self) -> int:
        return self.n_unregistered * self.cases_out // self.n_cases

    def _batch(self, families: list[Family], may_register: bool) -> Batch:
        rng = self.rng
        cases: list[CaseRecord] = []
        case_info: dict[int, tuple[dict[str, str], CaseRecord, set[str]]] = {}
        sought: dict[int, list[Child]] = {}
        for f_index, family in enumerate(families):
            for child in family.children:
                if not (may_register and self.cases_out < self.n_cases and self._chance(0.78)):
                    continue
                child.registered = True
                child.case_id = self._id("case")
                child.consent = self._chance(self.CONSENT)
                siblings = [c for c in family.children if c is not child]
                chosen: dict[str, str] = {}
                case_tags: set[str] = set()
                record = self._case(family, child, siblings, case_tags, chosen)
                cases.append(record)
                case_info[id(child)] = (chosen, record, case_tags)
                self.identities[self._identity(family, child)] += 1
                # Selection sampling: exactly n_matched of the n_cases cases get a trace.
                needed = self.n_matched - self.matched_out
                left = self.n_cases - self.cases_out
                self.cases_out += 1
                if needed > 0 and rng.random() * left < needed:
                    sought.setdefault(f_index, []).append(child)
                    self.matched_out += 1
        target = self._unregistered_target() if self.cases_out < self.n_cases else self.n_unregistered
        if not may_register:
            target = max(target, self.unregistered_out + 1)
        for f_index, family in enumerate(families):
            for child in family.children:
                if not child.registered and self.unregistered_out < min(target, self.n_unregistered):
                    sought.setdefault(f_index, []).append(child)
                    self.unregistered_out += 1
        requests = [self._request(families[f_index], families, children, case_info)
                    for f_index, children in sorted(sought.items())]
        return Batch(cases, requests)

    @staticmethod
    def _identity(family: Family, child: Child) -> tuple[str, ...]:
        """What makes two children namesakes: the same given name, father's name and
        grandfather's (or family) name."""
        third = family.family_name.key if family.family_name else family.grandfather.key
        return (family.tradition.key, child.sex, child.given.key, family.father.key, third)

    def _request(self, family: Family, families: list[Family], children: list[Child],
                 case_info: dict[int, tuple[dict[str, str], CaseRecord, set[str]]]) -> TracingRequestRecord:
        rng = self.rng
        t = family.tradition
        relation = rng.choices([r for r, _ in RELATIONS], [w for _, w in RELATIONS])[0]
        inquiry = self._date_between(family.separation_date + dt.timedelta(days=3),
                                     min(family.separation_date + dt.timedelta(days=5 * 365), AS_OF))
        location = family.home if self._chance(0.5) else self._leaf(rng.choice(t.hosts))
        # One tracing officer writes the request and its traces.
        writer = self._writer(t, location, script_share=t.script_share)
        request = {
            "relation_name": self._inquirer(family, relation, writer),
            "relation": relation,
            "relation_location_current": location,
            "inquiry_date": inquiry.isoformat(),
            "consent_for_tracing": True,
        }
        self._check_keys("tracing_request", request)
        traces = []
        for child in children:
            tags: set[str] = set()
            info = case_info.get(id(child))
            chosen_case, case, case_tags = info if info else (None, None, set())
            data = self._trace(family, child, inquiry, relation, writer, chosen_case,
                               case.data if case else None, case_tags, tags)
            if "case:age_off" in case_tags:
                tags.add("age_estimated")
            if case is not None and (case.registered_on - family.separation_date).days >= 365:
                tags.add("age_drift")
            self._context_tags(family, families, child, tags)
            if len(children) > 1:
                tags.add("multi_child_request")
            final = sorted(tag for tag in tags if ":" not in tag)  # drop working tags (case:..., trace:...)
            trace = TraceRecord(self._id("trace"), data, child.case_id, final, self._identity(family, child))
            traces.append(trace)
            self.truth.append(trace)
            self.traces_out += 1
        return TracingRequestRecord(self._id("request"), request, traces)

    def _context_tags(self, family: Family, families: list[Family], child: Child, tags: set[str]) -> None:
        pool = family.tradition.male if child.sex == "male" else family.tradition.female
        if child.given.key in pool.common:
            tags.add("common_name")
        others = [c for c in family.children if c is not child and c.registered]
        twins = [c for c in others if c.twin and child.twin and c.dob == child.dob]
        if child.registered:
            if not child.consent:
                tags.add("no_consent")
            if twins:
                tags.add("registered_twin")
            if [c for c in others if c not in twins]:
                tags.add("registered_sibling")
        else:
            tags.add("unregistered")
            if twins:
                tags.add("unregistered_twin_registered")
            if [c for c in others if c not in twins]:
                tags.add("unregistered_sibling_registered")
        if any(c.registered for f in families if f is not family for c in f.children):
            tags.add("registered_cousin")

    def finish(self) -> list[TraceRecord]:
        """Add the namesake tag (needs every case) and return the truth, one row per trace."""
        for trace in self.truth:
            own = 1 if trace.case_source_id else 0
            if self.identities[trace.identity] > own and "namesake_case" not in trace.tags:
                trace.tags = sorted([*trace.tags, "namesake_case"])
        return self.truth


def generate(cases: int, traces: int, seed: int = 1) -> tuple[list[CaseRecord], list[TracingRequestRecord],
                                                               list[TraceRecord]]:
    """Everything in memory (for tests and small runs): cases, requests, truth."""
    gen = Generator(cases, traces, seed)
    all_cases: list[CaseRecord] = []
    requests: list[TracingRequestRecord] = []
    for batch in gen.batches():
        all_cases += batch.cases
        requests += batch.requests
    truth = gen.finish()
    return all_cases, requests, truth


def tag_shares(truth: list[TraceRecord]) -> dict[str, tuple[int, float]]:
    """Number and share of traces carrying each tag, in the order of ``TAGS``."""
    counts = Counter(tag for trace in truth for tag in trace.tags)
    total = max(len(truth), 1)
    return {tag: (counts[tag], counts[tag] / total) for tag in TAGS}


def variant_overlap(truth_pairs: list[tuple[str, str]] | None = None) -> dict[str, float]:
    """How many of the generator's same-name spelling pairs the engine's curated table
    already puts in one class (read from matching.names, for reporting only)."""
    from matching.names import canonical_name
    pairs = truth_pairs
    if pairs is None:
        pairs = []
        for tradition in TRADITIONS:
            pools = [tradition.male, tradition.female] + ([tradition.family] if tradition.family else [])
            for pool in pools:
                for entry in pool.entries:
                    spellings = list(dict.fromkeys((*entry.latin, *entry.somali, *entry.french)))
                    pairs += [(a, b) for a, b in itertools.combinations(spellings, 2) if fold(a) != fold(b)]
    known = sum(1 for a, b in pairs if canonical_name(a.replace(" ", "")) == canonical_name(b.replace(" ", "")))
    return {"pairs": len(pairs), "known_to_engine_table": known / max(len(pairs), 1)}


def write_jsonl(directory: Path, cases: int, traces: int, seed: int) -> dict:
    """Write the data set as JSON lines into `directory`; returns the summary."""
    directory.mkdir(parents=True, exist_ok=True)
    gen = Generator(cases, traces, seed)
    (directory / "locations.csv").write_text(locations_csv(gen.places), encoding="utf-8")
    with (directory / "cases.jsonl").open("w", encoding="utf-8") as case_fh, \
            (directory / "tracing_requests.jsonl").open("w", encoding="utf-8") as request_fh:
        for batch in gen.batches():
            for case in batch.cases:
                case_fh.write(json.dumps({"source_id": case.source_id, "registered_on": case.registered_on.isoformat(),
                                          "data": case.data}, ensure_ascii=False, sort_keys=True) + "\n")
            for request in batch.requests:
                request_fh.write(json.dumps({
                    "source_id": request.source_id, "data": request.data,
                    "traces": [{"source_id": t.source_id, "data": t.data} for t in request.traces],
                }, ensure_ascii=False, sort_keys=True) + "\n")
    truth = gen.finish()
    with (directory / "truth.jsonl").open("w", encoding="utf-8") as fh:
        for trace in truth:
            fh.write(json.dumps({"trace": trace.source_id, "case": trace.case_source_id, "tags": trace.tags},
                                ensure_ascii=False) + "\n")
    summary = summary_of(gen, truth)
    (directory / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n",
                                            encoding="utf-8")
    return summary


def summary_of(gen: Generator, truth: list[TraceRecord]) -> dict:
    return {
        "seed": gen.seed, "cases": gen.cases_out, "traces": gen.traces_out,
        "traces_with_registered_child": gen.matched_out, "traces_never_registered": gen.unregistered_out,
        "tags": {tag: {"traces": n, "share": round(share, 4)} for tag, (n, share) in tag_shares(truth).items()},
    }


def print_shares(truth: list[TraceRecord], out=sys.stdout) -> None:
    print(f"{'hard case':34} {'traces':>8} {'share':>7}  meaning", file=out)
    for tag, (n, share) in tag_shares(truth).items():
        print(f"{tag:34} {n:8,} {100 * share:6.1f}%  {TAGS[tag]}", file=out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--traces", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output", type=Path, help="directory for the JSON lines files")
    parser.add_argument("--stats", action="store_true", help="print the share of each hard case")
    args = parser.parse_args(argv)
    if args.output:
        summary = write_jsonl(args.output, args.cases, args.traces, args.seed)
        print(f"{summary['cases']:,} cases, {summary['traces']:,} traces written to {args.output}")
    if args.stats or not args.output:
        _cases, _requests, truth = generate(args.cases, args.traces, args.seed)
        print_shares(truth)


if __name__ == "__main__":
    main()
