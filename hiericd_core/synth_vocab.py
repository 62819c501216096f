"""Vocabulary and templates for :mod:`hiericd_core.synth` (data only, no logic).

Everything the synthetic pathology reports are made of lives here: which
ICD-10-CM categories a pathology department codes and how often, how a code's
tabular description is turned into pathology language (per morphology head
and per organ), and the sentence templates of each report section.

Template slots (``{name}``) are filled by :mod:`hiericd_core.synth`; a slot
written with a capital first letter (``{Site}``) is filled capitalised.
"""

from __future__ import annotations

# --------------------------------------------------------------------------
# Code universe
# --------------------------------------------------------------------------

#: ICD-10-CM chapters a pathology department codes from.
CHAPTERS = ("2", "11", "12", "13", "14", "18", "21")

#: Category weights (relative mass of the category in the department's
#: case mix). Categories not listed are not used.
CATEGORY_WEIGHTS: dict[str, float] = {
    # very common
    **dict.fromkeys("C50 C44 D12 K63 D22 L82 C61 C18 K80 K81 D25 N84 K29 L57 C34 D23 N87 K35".split(), 40.0),
    # common
    **dict.fromkeys(
        "C43 D03 D04 C20 C19 C16 C25 C53 C54 C56 C64 C67 C73 D05 D06 D24 N60 N85 K57 K31 K62 K21 K20 K22 "
        "K50 K51 K52 L72 L98 L40 L43 N40 N42 N80 N83 M72 M67 R87 R92 D17 D21 C77 C78 C79 Z85 Z17 D13 D10 "
        "D29 D30 D36 D48 D49 L92 L91 L90 L85 N88 N86 K64 K60 K38 M16 M17 N64 N61 C4A C22 C15 C21 C32 C49 "
        "C62 C7A D3A D37 D41 D39 D27 D26 D28".split(),
        10.0,
    ),
    # occasional
    **dict.fromkeys(
        "C00 C01 C02 C03 C04 C05 C06 C07 C08 C09 C10 C11 C13 C17 C23 C24 C26 C30 C31 C38 C40 C41 C45 C47 "
        "C48 C51 C52 C55 C57 C60 C63 C65 C66 C68 C69 C70 C71 C72 C74 C75 C76 C80 C81 C82 C83 C84 C85 C86 "
        "C88 C90 D00 D01 D02 D07 D09 D11 D14 D15 D16 D18 D19 D31 D32 D33 D34 D35 D38 D40 D42 D43 D44 "
        "K25 K26 K55 K61 K70 K73 K74 K75 K76 K82 K83 K86 K90 K92 L05 L08 L10 L12 L21 L28 L30 L93 L94 L95 "
        "N20 N28 N30 N32 N41 N43 N45 N70 N71 N72 N81 N89 N90 M19 M65 M71 M79 M86 M87 M85 R19 R22 R59 R85 "
        "R89 R93 Z80 Z15 Z86 Z87 Z90".split(),
        2.0,
    ),
}

#: Codes pinned at the head of the frequency ranking (most frequent first):
#: the bread and butter of a surgical pathology department.
HEAD_CODES = (
    "K63.5", "D12.5", "L82.1", "C50.911", "C50.912", "D22.5", "C44.311", "D12.2", "C61",
    "L57.0", "K80.10", "D25.9", "N84.0", "K29.70", "C44.41", "D12.3", "C44.319", "D12.0",
    "K35.80", "N87.0", "C18.7", "C34.11", "D12.4", "C44.519", "C44.612", "C44.619", "K21.9",
    "K31.89", "D23.5", "L72.0", "C50.412", "C50.411", "N60.12", "N60.11", "D24.1", "D24.2",
    "K81.1", "N40.0", "C44.712", "C44.719", "C43.59", "D22.62", "D22.61", "C73", "C67.9",
    "C18.2", "C20", "K57.30", "N85.00", "D12.8",
)

#: Multiplier on a code's weight when its description matches the pattern.
CODE_WEIGHT_PATTERNS: tuple[tuple[str, float], ...] = (
    (r"\bin remission\b|\bin relapse\b|\bnot having achieved remission\b", 0.0),
    (r"\bmale breast\b", 0.05),
    (r"\boverlapping sites\b", 0.3),
    (r"\bunspecified\b", 0.55),
    (r"\bother\b", 0.5),
    (r"\bwith (?:bleeding|perforation|obstruction|abscess|fistula)\b", 0.5),
    (r"\bnecrosis of (?:muscle|bone)\b|\bpressure\b|\bulcer of\b", 0.2),
)

# --------------------------------------------------------------------------
# Organs
# --------------------------------------------------------------------------

#: Organ of a category (first match wins); categories not listed fall back
#: to :data:`ORGAN_KEYWORDS` on the description.
ORGAN_BY_CATEGORY: dict[str, str] = {
    **dict.fromkeys("C50 D05 D24 N60 N61 N62 N63 N64 R92 Z17".split(), "breast"),
    **dict.fromkeys("C43 C44 C4A D03 D04 D22 D23 D17 L05 L08 L10 L12 L21 L28 L30 L40 L43 L57 L72 "
                    "L82 L85 L90 L91 L92 L93 L94 L95 L98 R22".split(), "skin"),
    **dict.fromkeys("C18 C19 C20 D12 K50 K51 K52 K55 K57 K63 K62".split(), "colon"),
    **dict.fromkeys("C21 K60 K61 K64".split(), "anus"),
    **dict.fromkeys("K35 K36 K37 K38".split(), "appendix"),
    **dict.fromkeys("C16 K25 K29 K31".split(), "stomach"),
    **dict.fromkeys("C15 K20 K21 K22".split(), "esophagus"),
    **dict.fromkeys("C17 K26 K90".split(), "small_bowel"),
    **dict.fromkeys("C22 K70 K73 K74 K75 K76".split(), "liver"),
    **dict.fromkeys("C23 C24 K80 K81 K82 K83".split(), "gallbladder"),
    **dict.fromkeys("C25 K86".split(), "pancreas"),
    **dict.fromkeys("C34 C33 C38 C39 C45 D02 D14 D15 D38".split(), "lung"),
    **dict.fromkeys("C00 C01 C02 C03 C04 C05 C06 C07 C08 C09 C10 C11 C12 C13 C14 C30 C31 C32 D00 D10 "
                    "D11".split(), "head_neck"),
    **dict.fromkeys("C73 C74 C75 D34 D35 D44".split(), "endocrine"),
    **dict.fromkeys("C61 N40 N41 N42".split(), "prostate"),
    **dict.fromkeys("C67 N30 N32 C68".split(), "bladder"),
    **dict.fromkeys("C64 C65 C66 D30 D41 N20 N28".split(), "kidney"),
    **dict.fromkeys("C60 C62 C63 D29 D40 N43 N45".split(), "testis"),
    **dict.fromkeys("C54 C55 D25 D26 N71 N84 N85".split(), "uterus"),
    **dict.fromkeys("C53 D06 N72 N86 N87 N88 R87".split(), "cervix"),
    **dict.fromkeys("C56 C57 D27 D28 D39 N70 N80 N83 N81".split(), "ovary"),
    **dict.fromkeys("C51 C52 D07 N89 N90".split(), "vulva"),
    **dict.fromkeys("C77 C81 C82 C83 C84 C85 C86 C88 D36 R59".split(), "lymph_node"),
    **dict.fromkeys("C90".split(), "marrow"),
    **dict.fromkeys("C40 C41 D16 M19 M16 M17 M85 M86 M87".split(), "bone"),
    **dict.fromkeys("C47 C48 C49 D21 D48 M65 M67 M71 M72 M79".split(), "soft_tissue"),
    **dict.fromkeys("C70 C71 C72 D32 D33 D42 D43".split(), "brain"),
    **dict.fromkeys("C69 D31".split(), "eye"),
}

#: Fallback organ from words of the description (regex → organ).
ORGAN_KEYWORDS: tuple[tuple[str, str], ...] = (
    (r"breast|mammo", "breast"),
    (r"skin|cutaneous", "skin"),
    (r"colon|rect|cecum|sigmoid|intestin|colorectal", "colon"),
    (r"anus|anal", "anus"),
    (r"stomach|gastr|duoden", "stomach"),
    (r"esophag", "esophagus"),
    (r"liver|hepat", "liver"),
    (r"gallbladder|biliary|bile", "gallbladder"),
    (r"pancrea", "pancreas"),
    (r"lung|bronch|pleura|respirat|trache", "lung"),
    (r"prostat", "prostate"),
    (r"bladder|urinary", "bladder"),
    (r"kidney|renal|ureter", "kidney"),
    (r"testi|penis|male genital|epididym", "testis"),
    (r"uter|endometri", "uterus"),
    (r"cervi", "cervix"),
    (r"ovar|fallopian|female genital", "ovary"),
    (r"vulva|vagin", "vulva"),
    (r"lymph", "lymph_node"),
    (r"bone|cartilage|joint|hip|knee", "bone"),
    (r"thyroid|adrenal|endocrine|pituitar", "endocrine"),
    (r"brain|mening|spinal|nerv", "brain"),
    (r"eye|orbit|conjunctiv", "eye"),
    (r"lip|tongue|mouth|pharyn|laryn|saliv|nasal|sinus|head", "head_neck"),
    (r"digestive", "colon"),
)

#: Per organ: ``label`` (specimen noun), ``procs`` (procedures), ``morph``
#: (pathology wording per behaviour), ``tissue`` (gross), ``micro`` (features
#: per behaviour), ``mods`` (diagnosis modifiers), ``neg`` (negated findings),
#: ``rfv`` (reason-for-visit templates; ``{site}`` gets the site with
#: laterality), ``presenting`` (clinical history, never lateralised),
#: ``dept`` (ordering service).
ORGANS: dict[str, dict] = {
    "breast": dict(
        label="Breast", dept="Breast Surgery",
        procs=["core needle biopsy", "ultrasound-guided core biopsy", "lumpectomy", "excisional biopsy",
               "partial mastectomy", "simple mastectomy", "stereotactic biopsy"],
        morph=dict(
            malignant=["invasive ductal carcinoma", "invasive lobular carcinoma", "invasive mammary carcinoma",
                       "infiltrating ductal carcinoma", "invasive carcinoma of no special type"],
            benign=["fibroadenoma", "intraductal papilloma", "benign phyllodes tumor"],
            insitu=["ductal carcinoma in situ", "DCIS"],
            uncertain=["atypical ductal hyperplasia", "borderline phyllodes tumor"],
        ),
        tissue=["{n} cores of yellow-tan fibrofatty tissue", "a lumpectomy specimen", "an oriented portion of "
                "fibrofatty breast tissue", "multiple fragments of tan-white tissue"],
        micro=dict(
            malignant=["The tumor is composed of infiltrating nests and cords of atypical ductal cells.",
                       "Tubule formation is present in less than 10% of the tumor.",
                       "Nuclear pleomorphism is moderate and mitoses are readily identified."],
            benign=["The lesion shows a biphasic proliferation of stroma and compressed ducts.",
                    "There is usual ductal hyperplasia without atypia."],
            other=["The breast parenchyma shows fibrocystic change with apocrine metaplasia."],
        ),
        mods=dict(malignant=["Nottingham grade 2", "Nottingham grade 3", "grade 1", "measuring {size} cm",
                             "margins free of tumor"],
                  benign=["measuring {size} cm", "completely excised"]),
        neg=["lymphovascular invasion", "atypia", "malignancy", "microcalcifications"],
        rfv=["Mass, {site}, r/o carcinoma", "Abnormal mammogram, {site}", "Palpable lump, {site}",
             "BI-RADS 5 lesion, {site}", "Calcifications, {site}, s/p stereotactic biopsy"],
        rfv_plain=["Breast mass, r/o carcinoma", "Abnormal screening mammogram", "BI-RADS 4 lesion"],
        presenting=["a palpable breast mass", "an abnormal screening mammogram", "breast calcifications"],
        history_procs=["lumpectomy", "mastectomy", "radiation therapy"],
    ),
    "skin": dict(
        label="Skin", dept="Dermatology",
        procs=["shave biopsy", "punch biopsy", "excision", "re-excision", "curettage", "Mohs debulking"],
        morph=dict(
            malignant=["malignant neoplasm", "carcinoma"],
            benign=["benign adnexal neoplasm", "dermatofibroma"],
            insitu=["squamous cell carcinoma in situ", "Bowen disease"],
            uncertain=["atypical spindle cell proliferation"],
        ),
        tissue=["a shave of tan skin", "a punch of skin", "an ellipse of skin", "a fragment of skin"],
        micro=dict(
            malignant=["There are nests of basaloid cells with peripheral palisading and retraction artifact.",
                       "Atypical keratinocytes invade the dermis.",
                       "The dermis shows an infiltrative proliferation of atypical cells."],
            benign=["The lesion is symmetric and well circumscribed.",
                    "Nests of bland melanocytes are present at the dermal-epidermal junction."],
            other=["The epidermis shows hyperkeratosis and acanthosis.",
                   "There is a superficial perivascular lymphocytic infiltrate."],
        ),
        mods=dict(malignant=["margins free", "extending to the deep margin", "peripheral margin involved",
                             "measuring {size} cm"],
                  benign=["margins free", "completely excised", "extending to the lateral margin"]),
        neg=["melanoma", "malignancy", "atypia", "residual carcinoma"],
        rfv=["Skin lesion, {site}, r/o BCC", "Changing mole, {site}", "Nonhealing lesion, {site}, r/o SCC",
             "Pigmented lesion, {site}", "Lesion, {site}"],
        rfv_plain=["Skin lesion, r/o BCC", "Changing mole", "Rash, r/o dermatitis", "Lesion of skin"],
        presenting=["a changing pigmented lesion", "a nonhealing skin lesion", "a scaly papule",
                    "a rapidly growing nodule"],
        history_procs=["Mohs surgery", "wide local excision", "cryotherapy"],
    ),
    "colon": dict(
        label="Colon", dept="Gastroenterology",
        procs=["polypectomy", "cold snare polypectomy", "biopsy", "right hemicolectomy", "sigmoid colectomy",
               "endoscopic mucosal resection"],
        morph=dict(
            malignant=["adenocarcinoma", "invasive adenocarcinoma", "moderately differentiated adenocarcinoma"],
            benign=["tubular adenoma", "tubulovillous adenoma", "sessile serrated lesion"],
            insitu=["intramucosal carcinoma", "adenoma with high-grade dysplasia"],
            uncertain=["neoplasm of uncertain behavior"],
        ),
        tissue=["{n} polypoid fragments of tan-pink tissue", "a segment of colon", "multiple tan-pink fragments"],
        micro=dict(
            malignant=["Malignant glands invade through the muscularis propria into pericolonic fat.",
                       "There is dirty necrosis within the neoplastic glands."],
            benign=["The polyp shows crowded tubular glands with low-grade dysplasia.",
                    "The crypts show pencillate hyperchromatic nuclei."],
            other=["The colonic mucosa shows preserved crypt architecture.",
                   "There is a lamina propria lymphoplasmacytic infiltrate."],
        ),
        mods=dict(malignant=["invading into the subserosa", "pT3 N0", "margins negative",
                             "measuring {size} cm"],
                  benign=["with low-grade dysplasia", "measuring {size} cm", "fragmented"]),
        neg=["high-grade dysplasia", "malignancy", "invasive carcinoma", "granulomas"],
        rfv=["Polyp, {site}", "Screening colonoscopy, polyp in {site}", "Mass, {site}, r/o malignancy",
             "Surveillance colonoscopy, lesion in {site}"],
        rfv_plain=["Screening colonoscopy", "Rectal bleeding", "Change in bowel habits", "Hx of polyps"],
        presenting=["a history of colon polyps", "rectal bleeding", "iron deficiency anemia",
                    "a positive stool test"],
        history_procs=["polypectomy", "colectomy", "chemotherapy"],
    ),
    "anus": dict(
        label="Anus", dept="Colorectal Surgery",
        procs=["excision", "biopsy", "hemorrhoidectomy"],
        morph=dict(malignant=["squamous cell carcinoma"], benign=["condyloma"],
                   insitu=["anal intraepithelial neoplasia 3"]),
        tissue=["{n} fragments of tan tissue", "a hemorrhoidal tissue specimen"],
        micro=dict(other=["The squamous mucosa shows dilated thick-walled vessels.",
                          "There is anorectal mucosa with congestion."]),
        mods=dict(),
        neg=["dysplasia", "malignancy"],
        rfv=["Anal lesion, {site}", "Perianal mass, {site}"],
        rfv_plain=["Hemorrhoids", "Anal pain", "Perianal lesion"],
        presenting=["anal pain and bleeding", "a perianal lesion"],
        history_procs=["hemorrhoidectomy"],
    ),
    "appendix": dict(
        label="Appendix", dept="General Surgery",
        procs=["appendectomy", "laparoscopic appendectomy"],
        morph=dict(malignant=["adenocarcinoma"], benign=["low-grade appendiceal mucinous neoplasm"]),
        tissue=["a vermiform appendix"],
        micro=dict(other=["Neutrophils infiltrate the muscularis propria.",
                          "There is transmural acute inflammation with serositis."]),
        mods=dict(),
        neg=["neoplasm", "malignancy", "perforation"],
        rfv=["Right lower quadrant pain, {site}"],
        rfv_plain=["Right lower quadrant pain, r/o appendicitis", "Acute abdomen", "Abdominal pain"],
        presenting=["right lower quadrant pain", "fever and leukocytosis"],
        history_procs=["appendectomy"],
    ),
    "stomach": dict(
        label="Stomach", dept="Gastroenterology",
        procs=["biopsy", "EGD biopsy", "gastrectomy", "polypectomy"],
        morph=dict(malignant=["adenocarcinoma", "poorly cohesive carcinoma", "intestinal-type adenocarcinoma"],
                   benign=["fundic gland polyp", "hyperplastic polyp"], insitu=["high-grade dysplasia"]),
        tissue=["{n} fragments of tan-pink mucosa", "multiple tan fragments"],
        micro=dict(malignant=["Infiltrating signet ring cells are present in the lamina propria."],
                   other=["The gastric mucosa shows a chronic inflammatory infiltrate.",
                          "Giemsa stain is performed and reviewed.", "There is foveolar hyperplasia."]),
        mods=dict(malignant=["measuring {size} cm"]),
        neg=["Helicobacter pylori organisms", "intestinal metaplasia", "dysplasia", "malignancy"],
        rfv=["Gastric lesion, {site}", "Ulcer, {site}"],
        rfv_plain=["Epigastric pain", "Dyspepsia", "Anemia, r/o gastritis", "Nausea and vomiting"],
        presenting=["epigastric pain", "dyspepsia", "anemia"],
        history_procs=["gastrectomy", "EGD"],
    ),
    "esophagus": dict(
        label="Esophagus", dept="Gastroenterology",
        procs=["biopsy", "EGD biopsy", "esophagectomy"],
        morph=dict(malignant=["adenocarcinoma", "squamous cell carcinoma"], benign=["squamous papilloma"],
                   insitu=["high-grade dysplasia"]),
        tissue=["{n} fragments of tan-pink mucosa"],
        micro=dict(other=["The squamous mucosa shows basal cell hyperplasia.",
                          "Intraepithelial eosinophils are increased.",
                          "There is columnar mucosa with goblet cells."]),
        mods=dict(),
        neg=["dysplasia", "Barrett esophagus", "malignancy"],
        rfv=["Esophageal lesion, {site}"],
        rfv_plain=["Dysphagia", "Heartburn", "GERD, r/o Barrett", "Reflux symptoms"],
        presenting=["dysphagia", "longstanding heartburn"],
        history_procs=["EGD"],
    ),
    "small_bowel": dict(
        label="Small intestine", dept="Gastroenterology",
        procs=["biopsy", "resection", "duodenal biopsy"],
        morph=dict(malignant=["adenocarcinoma"], benign=["adenoma"]),
        tissue=["{n} fragments of tan mucosa", "a segment of small bowel"],
        micro=dict(other=["The villi are blunted with increased intraepithelial lymphocytes.",
                          "The villous architecture is preserved."]),
        mods=dict(),
        neg=["villous blunting", "malignancy"],
        rfv=["Lesion, {site}"],
        rfv_plain=["Diarrhea, r/o celiac disease", "Abdominal pain", "Weight loss"],
        presenting=["chronic diarrhea", "weight loss"],
        history_procs=["small bowel resection"],
    ),
    "liver": dict(
        label="Liver", dept="Hepatology",
        procs=["needle biopsy", "wedge biopsy", "partial hepatectomy"],
        morph=dict(malignant=["hepatocellular carcinoma", "cholangiocarcinoma"], benign=["hepatic adenoma"]),
        tissue=["a core of tan-brown tissue"],
        micro=dict(other=["Trichrome stain highlights bridging fibrosis.",
                          "There is macrovesicular steatosis involving 30% of hepatocytes.",
                          "Portal tracts show a mild lymphocytic infiltrate."]),
        mods=dict(),
        neg=["malignancy", "iron deposition"],
        rfv=["Liver lesion, {site}"],
        rfv_plain=["Elevated liver enzymes", "Liver mass", "Abnormal LFTs"],
        presenting=["elevated liver enzymes", "a liver mass on imaging"],
        history_procs=["liver biopsy"],
    ),
    "gallbladder": dict(
        label="Gallbladder", dept="General Surgery",
        procs=["cholecystectomy", "laparoscopic cholecystectomy"],
        morph=dict(malignant=["adenocarcinoma"], benign=["adenoma"]),
        tissue=["an opened gallbladder", "a gallbladder with multiple yellow stones"],
        micro=dict(other=["The gallbladder wall shows Rokitansky-Aschoff sinuses.",
                          "There is a chronic inflammatory infiltrate and mural fibrosis."]),
        mods=dict(),
        neg=["dysplasia", "malignancy"],
        rfv=["Gallbladder lesion, {site}"],
        rfv_plain=["Right upper quadrant pain", "Symptomatic cholelithiasis", "Biliary colic"],
        presenting=["right upper quadrant pain", "biliary colic"],
        history_procs=["cholecystectomy"],
    ),
    "pancreas": dict(
        label="Pancreas", dept="Surgical Oncology",
        procs=["Whipple resection", "distal pancreatectomy", "EUS-guided FNA"],
        morph=dict(malignant=["pancreatic ductal adenocarcinoma", "adenocarcinoma"],
                   benign=["serous cystadenoma"]),
        tissue=["a pancreaticoduodenectomy specimen"],
        micro=dict(other=["There is perineural invasion.", "The pancreatic parenchyma shows atrophy."]),
        mods=dict(),
        neg=["malignancy"],
        rfv=["Mass, {site}"],
        rfv_plain=["Pancreatic mass", "Painless jaundice"],
        presenting=["painless jaundice", "a pancreatic mass"],
        history_procs=["ERCP"],
    ),
    "lung": dict(
        label="Lung", dept="Thoracic Surgery",
        procs=["wedge resection", "lobectomy", "CT-guided core biopsy", "bronchoscopic biopsy"],
        morph=dict(malignant=["adenocarcinoma", "squamous cell carcinoma", "non-small cell carcinoma",
                              "invasive non-mucinous adenocarcinoma"],
                   benign=["hamartoma"], insitu=["adenocarcinoma in situ"], secondary=["metastatic carcinoma"]),
        tissue=["a wedge of lung", "{n} cores of tan tissue"],
        micro=dict(malignant=["The tumor shows acinar and lepidic growth patterns.",
                              "TTF-1 is positive in tumor cells."],
                   other=["The lung parenchyma shows emphysematous change."]),
        mods=dict(malignant=["measuring {size} cm", "pT1b", "visceral pleura not involved"]),
        neg=["visceral pleural invasion", "malignancy", "granulomas"],
        rfv=["Nodule, {site}", "Mass, {site}, r/o malignancy", "Spiculated lesion, {site}"],
        rfv_plain=["Lung nodule", "Lung mass", "Abnormal chest CT"],
        presenting=["a lung nodule on CT", "cough and weight loss", "a smoking history"],
        history_procs=["lobectomy", "chemoradiation"],
    ),
    "head_neck": dict(
        label="Head and neck", dept="Otolaryngology",
        procs=["biopsy", "excision", "resection", "tonsillectomy", "parotidectomy"],
        morph=dict(malignant=["squamous cell carcinoma", "invasive squamous cell carcinoma"],
                   benign=["pleomorphic adenoma", "squamous papilloma"], insitu=["carcinoma in situ"]),
        tissue=["{n} fragments of tan tissue", "a piece of mucosa"],
        micro=dict(other=["p16 immunostain is performed.", "The squamous mucosa shows keratosis."]),
        mods=dict(malignant=["keratinizing", "HPV-associated"]),
        neg=["dysplasia", "malignancy"],
        rfv=["Lesion, {site}", "Mass, {site}"],
        rfv_plain=["Neck mass", "Oral lesion", "Hoarseness"],
        presenting=["a neck mass", "an oral lesion", "hoarseness"],
        history_procs=["neck dissection"],
    ),
    "endocrine": dict(
        label="Thyroid", dept="Endocrine Surgery",
        procs=["thyroidectomy", "lobectomy", "FNA"],
        morph=dict(malignant=["papillary thyroid carcinoma", "follicular carcinoma"],
                   benign=["follicular adenoma", "adenoma"], uncertain=["NIFTP"]),
        tissue=["a thyroid lobe"],
        micro=dict(other=["The nuclei show grooves and pseudoinclusions.", "There is colloid nodular change."]),
        mods=dict(malignant=["classic type", "measuring {size} cm"]),
        neg=["extrathyroidal extension", "malignancy", "capsular invasion"],
        rfv=["Nodule, {site}"],
        rfv_plain=["Thyroid nodule", "Goiter", "Indeterminate FNA"],
        presenting=["a thyroid nodule", "an enlarging goiter"],
        history_procs=["thyroidectomy"],
    ),
    "prostate": dict(
        label="Prostate", dept="Urology",
        procs=["needle biopsy", "TRUS biopsy", "radical prostatectomy", "TURP"],
        morph=dict(malignant=["prostatic adenocarcinoma", "acinar adenocarcinoma", "adenocarcinoma"],
                   benign=["benign prostatic tissue"]),
        tissue=["{n} cores of tan tissue", "prostate chips weighing {size} grams"],
        micro=dict(malignant=["Small crowded glands with prominent nucleoli infiltrate between benign glands."],
                   other=["There is nodular glandular and stromal hyperplasia.",
                          "Basal cell immunostains are performed."]),
        mods=dict(malignant=["Gleason score 3+4=7", "Gleason score 3+3=6", "Grade Group 2",
                             "involving 30% of the core"]),
        neg=["malignancy", "perineural invasion", "high-grade PIN"],
        rfv=["Nodule, {site}"],
        rfv_plain=["Elevated PSA", "Rising PSA", "BPH with LUTS", "Abnormal DRE"],
        presenting=["an elevated PSA", "lower urinary tract symptoms"],
        history_procs=["prostate biopsy"],
    ),
    "bladder": dict(
        label="Bladder", dept="Urology",
        procs=["TURBT", "cold cup biopsy", "cystectomy"],
        morph=dict(malignant=["urothelial carcinoma", "invasive urothelial carcinoma",
                              "high-grade papillary urothelial carcinoma"], benign=["urothelial papilloma"]),
        tissue=["{n} fragments of tan tissue"],
        micro=dict(other=["Muscularis propria is present.", "There is von Brunn nest hyperplasia."]),
        mods=dict(malignant=["muscularis propria present", "invading lamina propria"]),
        neg=["muscularis propria invasion", "carcinoma in situ", "malignancy"],
        rfv=["Tumor, {site}"],
        rfv_plain=["Hematuria", "Bladder mass", "Abnormal cystoscopy"],
        presenting=["gross hematuria", "a bladder lesion on cystoscopy"],
        history_procs=["TURBT", "BCG therapy"],
    ),
    "kidney": dict(
        label="Kidney", dept="Urology",
        procs=["partial nephrectomy", "radical nephrectomy", "core biopsy"],
        morph=dict(malignant=["clear cell renal cell carcinoma", "renal cell carcinoma",
                              "papillary renal cell carcinoma"], benign=["oncocytoma", "angiomyolipoma"],
                   uncertain=["oncocytic neoplasm"]),
        tissue=["a kidney", "{n} cores of tan tissue"],
        micro=dict(other=["The tumor cells have clear cytoplasm and a delicate vascular network.",
                          "The renal parenchyma shows arterionephrosclerosis."]),
        mods=dict(malignant=["WHO/ISUP grade 2", "measuring {size} cm", "confined to the kidney"]),
        neg=["renal sinus invasion", "malignancy"],
        rfv=["Mass, {site}", "Renal lesion, {site}"],
        rfv_plain=["Renal mass", "Flank pain", "Incidental renal lesion"],
        presenting=["an incidental renal mass", "flank pain"],
        history_procs=["nephrectomy"],
    ),
    "testis": dict(
        label="Testis", dept="Urology",
        procs=["radical orchiectomy", "excision", "biopsy"],
        morph=dict(malignant=["seminoma", "mixed germ cell tumor"], benign=["adenomatoid tumor"]),
        tissue=["an orchiectomy specimen"],
        micro=dict(other=["Germ cell neoplasia in situ is present.", "Seminiferous tubules are atrophic."]),
        mods=dict(),
        neg=["lymphovascular invasion", "malignancy"],
        rfv=["Mass, {site}"],
        rfv_plain=["Testicular mass", "Scrotal swelling"],
        presenting=["a painless testicular mass", "scrotal swelling"],
        history_procs=["orchiectomy"],
    ),
    "uterus": dict(
        label="Uterus", dept="Gynecology",
        procs=["endometrial biopsy", "hysterectomy", "D&C", "hysteroscopic polypectomy", "myomectomy"],
        morph=dict(malignant=["endometrioid adenocarcinoma", "serous carcinoma"], benign=["leiomyoma"],
                   insitu=["endometrial intraepithelial neoplasia"]),
        tissue=["{n} fragments of tan-red tissue", "a uterus weighing {size}0 grams", "scant fragments of tissue"],
        micro=dict(other=["The endometrium is proliferative.", "The endometrium is secretory.",
                          "There are interlacing fascicles of bland smooth muscle cells."]),
        mods=dict(malignant=["FIGO grade 1", "invading less than one-half of the myometrium"],
                  benign=["measuring {size} cm"]),
        neg=["hyperplasia", "atypia", "malignancy"],
        rfv=["Mass, {site}"],
        rfv_plain=["Postmenopausal bleeding", "Abnormal uterine bleeding", "Menorrhagia", "Pelvic pain"],
        presenting=["postmenopausal bleeding", "abnormal uterine bleeding", "menorrhagia"],
        history_procs=["hysterectomy", "D&C"],
    ),
    "cervix": dict(
        label="Cervix", dept="Gynecology",
        procs=["colposcopic biopsy", "LEEP", "cone biopsy", "endocervical curettage"],
        morph=dict(malignant=["squamous cell carcinoma", "endocervical adenocarcinoma"],
                   insitu=["HSIL (CIN 3)", "adenocarcinoma in situ"]),
        tissue=["{n} fragments of tan tissue", "a LEEP specimen"],
        micro=dict(other=["Koilocytes are present in the superficial epithelium.",
                          "p16 immunostain shows block positivity.", "The transformation zone is present."]),
        mods=dict(),
        neg=["invasive carcinoma", "dysplasia", "malignancy"],
        rfv=["Abnormal Pap smear, {site}"],
        rfv_plain=["Abnormal Pap smear", "HPV positive", "ASC-US on Pap", "Postcoital bleeding"],
        presenting=["an abnormal Pap smear", "high-risk HPV"],
        history_procs=["LEEP", "colposcopy"],
    ),
    "ovary": dict(
        label="Ovary", dept="Gynecologic Oncology",
        procs=["salpingo-oophorectomy", "cystectomy", "biopsy"],
        morph=dict(malignant=["high-grade serous carcinoma", "serous carcinoma"],
                   benign=["serous cystadenoma", "mature cystic teratoma"], uncertain=["serous borderline tumor"]),
        tissue=["an ovary", "a cyst wall"],
        micro=dict(other=["The cyst is lined by bland epithelium.", "There is a corpus albicans."]),
        mods=dict(malignant=["involving the ovarian surface"], benign=["measuring {size} cm"]),
        neg=["malignancy", "surface involvement"],
        rfv=["Mass, {site}", "Cyst, {site}"],
        rfv_plain=["Pelvic mass", "Adnexal mass", "Pelvic pain"],
        presenting=["an adnexal mass", "pelvic pain", "elevated CA-125"],
        history_procs=["oophorectomy"],
    ),
    "vulva": dict(
        label="Vulva", dept="Gynecology",
        procs=["punch biopsy", "wide local excision"],
        morph=dict(malignant=["squamous cell carcinoma"], insitu=["VIN 3"]),
        tissue=["a punch of skin"],
        micro=dict(other=["The epidermis shows lichenoid inflammation."]),
        mods=dict(),
        neg=["dysplasia", "malignancy"],
        rfv=["Lesion, {site}"],
        rfv_plain=["Vulvar lesion", "Pruritus vulvae"],
        presenting=["a vulvar lesion"],
        history_procs=["vulvectomy"],
    ),
    "lymph_node": dict(
        label="Lymph node", dept="Hematology/Oncology",
        procs=["excisional biopsy", "core biopsy", "lymph node dissection", "sentinel lymph node biopsy"],
        morph=dict(malignant=["lymphoma"], secondary=["metastatic carcinoma"], benign=["benign neoplasm"]),
        tissue=["a lymph node", "{n} cores of tan tissue"],
        micro=dict(other=["Flow cytometry is performed.", "The nodal architecture is effaced.",
                          "CD20 and CD3 immunostains are performed."]),
        mods=dict(malignant=["see comment"]),
        neg=["lymphoma", "metastatic carcinoma", "granulomas"],
        rfv=["Lymphadenopathy, {site}", "Enlarged lymph node, {site}"],
        rfv_plain=["Lymphadenopathy", "Enlarged lymph node", "r/o lymphoma"],
        presenting=["lymphadenopathy", "night sweats and weight loss"],
        history_procs=["chemotherapy"],
    ),
    "marrow": dict(
        label="Bone marrow", dept="Hematology/Oncology",
        procs=["aspirate and core biopsy", "core biopsy"],
        morph=dict(malignant=["plasma cell neoplasm"]),
        tissue=["a core of red-brown tissue"],
        micro=dict(other=["CD138 highlights plasma cells.", "The marrow is hypercellular for age."]),
        mods=dict(),
        neg=["lymphoma", "malignancy"],
        rfv=["Bone lesion, {site}"],
        rfv_plain=["Anemia", "Monoclonal gammopathy", "Lytic bone lesions"],
        presenting=["a monoclonal protein"],
        history_procs=["chemotherapy"],
    ),
    "bone": dict(
        label="Bone", dept="Orthopedics",
        procs=["resection", "curettage", "core biopsy", "total hip arthroplasty", "total knee arthroplasty"],
        morph=dict(malignant=["osteosarcoma", "chondrosarcoma"], benign=["enchondroma", "osteochondroma"]),
        tissue=["a femoral head", "multiple fragments of bone"],
        micro=dict(other=["The articular cartilage shows fibrillation and eburnation.",
                          "There is reactive woven bone.", "Decalcification is performed."]),
        mods=dict(),
        neg=["malignancy", "osteomyelitis"],
        rfv=["Pain, {site}", "Lesion, {site}"],
        rfv_plain=["Joint pain", "Bone lesion", "Degenerative joint disease"],
        presenting=["chronic joint pain", "a bone lesion on imaging"],
        history_procs=["arthroplasty"],
    ),
    "soft_tissue": dict(
        label="Soft tissue", dept="Orthopedics",
        procs=["excision", "marginal excision", "core biopsy", "debridement"],
        morph=dict(malignant=["sarcoma", "leiomyosarcoma", "undifferentiated pleomorphic sarcoma"],
                   benign=["schwannoma", "benign spindle cell neoplasm"], uncertain=["desmoid-type fibromatosis"]),
        tissue=["a mass of tan-white tissue", "a nodule of tan tissue"],
        micro=dict(other=["The lesion is composed of bland spindle cells in a collagenous stroma.",
                          "There is myxoid degeneration."]),
        mods=dict(malignant=["FNCLCC grade 2", "measuring {size} cm"], benign=["completely excised"]),
        neg=["malignancy", "atypia"],
        rfv=["Mass, {site}", "Soft tissue lesion, {site}", "Swelling, {site}"],
        rfv_plain=["Soft tissue mass", "Palpable lump"],
        presenting=["an enlarging soft tissue mass"],
        history_procs=["excision"],
    ),
    "brain": dict(
        label="Brain", dept="Neurosurgery",
        procs=["resection", "stereotactic biopsy", "craniotomy"],
        morph=dict(malignant=["glioblastoma", "diffuse glioma"], benign=["meningioma", "schwannoma"]),
        tissue=["{n} fragments of gray-tan tissue"],
        micro=dict(other=["There is microvascular proliferation.", "The tumor cells form whorls."]),
        mods=dict(malignant=["CNS WHO grade 4"], benign=["CNS WHO grade 1"]),
        neg=["necrosis", "malignancy"],
        rfv=["Mass, {site}"],
        rfv_plain=["Brain mass", "Seizure", "Headache, mass on MRI"],
        presenting=["new-onset seizures", "headaches"],
        history_procs=["craniotomy"],
    ),
    "eye": dict(
        label="Eye", dept="Ophthalmology",
        procs=["excision", "biopsy", "enucleation"],
        morph=dict(malignant=["melanoma", "carcinoma"], benign=["nevus", "papilloma"]),
        tissue=["a fragment of tan tissue"],
        micro=dict(other=["The conjunctival epithelium shows goblet cells."]),
        mods=dict(),
        neg=["malignancy"],
        rfv=["Lesion, {site}"],
        rfv_plain=["Eye lesion", "Conjunctival lesion"],
        presenting=["a conjunctival lesion"],
        history_procs=["excision"],
    ),
}

#: Diagnosis modifiers of non-neoplastic findings.
GENERIC_MODS_OTHER = ["focal", "mild", "moderate", "see comment", "with reactive changes"]

GENERIC_MICRO = dict(
    malignant=["Sections show an infiltrative neoplasm with nuclear pleomorphism.",
               "Mitotic figures are readily identified.", "Immunohistochemical stains support the diagnosis."],
    benign=["The lesion is well circumscribed.", "There is no cytologic atypia."],
    other=["Sections show the described changes.", "No significant additional findings are noted."],
)

# --------------------------------------------------------------------------
# Description → pathology language
# --------------------------------------------------------------------------

#: Heads of tabular descriptions, tried in order. ``behaviour`` picks the
#: organ's wording when ``morphs`` is empty.
HEADS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    (r"secondary and unspecified malignant neoplasm of", "secondary",
     ("metastatic carcinoma", "metastatic adenocarcinoma", "carcinoma metastatic")),
    (r"secondary malignant neoplasm of", "secondary", ("metastatic carcinoma", "metastatic adenocarcinoma")),
    (r"basal cell carcinoma of skin of", "malignant",
     ("basal cell carcinoma", "basal cell carcinoma, nodular type", "basal cell carcinoma, superficial type",
      "infiltrative basal cell carcinoma")),
    (r"squamous cell carcinoma of skin of", "malignant",
     ("invasive squamous cell carcinoma", "squamous cell carcinoma, well differentiated",
      "keratinizing squamous cell carcinoma")),
    (r"unspecified malignant neoplasm of skin of", "malignant",
     ("malignant cutaneous neoplasm", "carcinoma, not otherwise specified")),
    (r"other specified malignant neoplasm of skin of", "malignant",
     ("sebaceous carcinoma", "microcystic adnexal carcinoma", "porocarcinoma")),
    (r"malignant melanoma of", "malignant",
     ("malignant melanoma", "invasive melanoma", "superficial spreading melanoma", "nodular melanoma")),
    (r"melanoma in situ of", "insitu", ("melanoma in situ", "lentigo maligna", "malignant melanoma in situ")),
    (r"sebaceous cell carcinoma of skin of", "malignant", ("sebaceous carcinoma", "sebaceous cell carcinoma")),
    (r"merkel cell carcinoma of", "malignant", ("Merkel cell carcinoma", "primary cutaneous neuroendocrine carcinoma")),
    (r"carcinoma in situ of skin of", "insitu",
     ("squamous cell carcinoma in situ", "Bowen disease", "SCC in situ")),
    (r"melanocytic nevi of", "benign",
     ("compound melanocytic nevus", "intradermal nevus", "junctional nevus", "dysplastic nevus with mild atypia")),
    (r"other benign neoplasm of skin of", "benign",
     ("dermatofibroma", "benign adnexal neoplasm", "trichoepithelioma", "hidradenoma")),
    (r"benign lipomatous neoplasm of(?: skin and subcutaneous tissue of)?", "benign",
     ("lipoma", "angiolipoma", "mature adipose tissue neoplasm")),
    (r"lobular carcinoma in situ of", "insitu", ("lobular carcinoma in situ", "LCIS", "classic LCIS")),
    (r"intraductal carcinoma in situ of", "insitu",
     ("ductal carcinoma in situ", "DCIS, intermediate nuclear grade", "high-grade DCIS")),
    (r"other specified type of carcinoma in situ of", "insitu", ("papillary carcinoma in situ",)),
    (r"malignant carcinoid tumor of(?: the)?", "malignant",
     ("well-differentiated neuroendocrine tumor", "carcinoid tumor", "neuroendocrine tumor, grade 1")),
    (r"benign carcinoid tumor of(?: the)?", "benign", ("benign carcinoid tumor", "neuroendocrine tumor, benign")),
    (r"carcinoma in situ of", "insitu", ()),
    (r"malignant neoplasm of", "malignant", ()),
    (r"benign neoplasm of", "benign", ()),
    (r"neoplasm of uncertain behavior of", "uncertain",
     ("neoplasm of uncertain malignant potential", "atypical neoplasm", "neoplasm of uncertain behavior")),
    (r"neoplasm of unspecified behavior of", "uncertain", ("neoplasm, behavior unspecified", "unclassified neoplasm")),
    (r"leiomyoma of uterus,?", "benign", ("leiomyoma", "uterine leiomyoma")),
    (r"personal history of (?:other )?malignant neoplasm of", "history",
     ("personal history of carcinoma", "history of malignancy")),
)

#: Wording for specific codes (the most frequent non-neoplastic ones).
CODE_MORPHS: dict[str, tuple[str, ...]] = {
    "K63.5": ("hyperplastic polyp", "colonic polyp", "inflammatory polyp"),
    "L82.1": ("seborrheic keratosis", "irritated seborrheic keratosis", "seborrheic keratosis, acanthotic type"),
    "L82.0": ("inflamed seborrheic keratosis", "seborrheic keratosis with inflammation"),
    "L57.0": ("actinic keratosis", "hypertrophic actinic keratosis", "solar keratosis"),
    "K80.10": ("chronic cholecystitis with cholelithiasis", "chronic cholecystitis and cholelithiasis"),
    "K80.20": ("cholelithiasis without cholecystitis",),
    "K81.1": ("chronic cholecystitis", "chronic cholecystitis with mural fibrosis"),
    "K81.0": ("acute cholecystitis", "acute gangrenous cholecystitis"),
    "N84.0": ("endometrial polyp", "benign endometrial polyp"),
    "N84.1": ("endocervical polyp", "benign endocervical polyp"),
    "K29.70": ("gastritis", "reactive gastropathy"),
    "K29.50": ("chronic gastritis", "chronic inactive gastritis"),
    "K35.80": ("acute appendicitis", "acute suppurative appendicitis", "acute appendicitis with periappendicitis"),
    "N87.0": ("low-grade squamous intraepithelial lesion (CIN 1)", "LSIL (CIN 1)", "mild dysplasia (CIN 1)"),
    "N87.1": ("moderate dysplasia (CIN 2)", "HSIL (CIN 2)"),
    "K21.9": ("reflux esophagitis", "changes consistent with reflux"),
    "K21.00": ("reflux esophagitis with erosions", "erosive esophagitis"),
    "K31.89": ("reactive gastropathy", "chemical gastropathy"),
    "L72.0": ("epidermal inclusion cyst", "ruptured epidermal inclusion cyst", "epidermoid cyst"),
    "L72.11": ("pilar cyst", "trichilemmal cyst"),
    "N40.0": ("benign prostatic hyperplasia", "nodular hyperplasia of prostate"),
    "N85.00": ("endometrial hyperplasia", "endometrial hyperplasia without atypia"),
    "N85.01": ("benign endometrial hyperplasia",),
    "N85.02": ("atypical endometrial hyperplasia (EIN)", "endometrial intraepithelial neoplasia"),
    "K62.1": ("rectal polyp", "hyperplastic rectal polyp"),
    "K20.0": ("eosinophilic esophagitis",),
    "K57.30": ("diverticulosis", "diverticular disease of colon"),
    "K57.32": ("diverticulitis", "acute diverticulitis"),
    "K90.0": ("celiac disease", "villous atrophy consistent with celiac disease"),
    "L98.0": ("pyogenic granuloma", "lobular capillary hemangioma"),
    "L40.0": ("psoriasiform dermatitis", "psoriasis vulgaris"),
    "M72.0": ("palmar fibromatosis", "Dupuytren contracture tissue"),
    "N42.31": ("high-grade prostatic intraepithelial neoplasia", "HGPIN"),
    "N42.32": ("atypical small acinar proliferation", "ASAP"),
    "K64.8": ("hemorrhoids", "thrombosed hemorrhoid"),
    "R87.610": ("ASC-US", "atypical squamous cells of undetermined significance"),
    "R87.612": ("LSIL on cytology", "low-grade squamous intraepithelial lesion"),
    "R87.613": ("HSIL on cytology", "high-grade squamous intraepithelial lesion"),
    "Z17.0": ("estrogen receptor positive", "ER positive (greater than 90% of tumor cells)"),
    "Z17.1": ("estrogen receptor negative", "ER negative"),
}

#: Phrases removed from descriptions (regex, case-insensitive).
DESCRIPTION_NOISE = (
    r", not elsewhere classified", r" not elsewhere classified", r", including canthus",
    r" and external auricular canal", r", including shoulder", r", including hip", r"\[[^\]]*\]",
    r"\((?:chronic|nontraumatic|acquired|healed|recurrent|active)\)", r", unspecified depth",
    r" unspecified depth", r", unspecified side", r"\bunspecified sites? of ", r", part unspecified",
    r"\bunspecified part of ",
    r", unspecified$", r"^unspecified ", r"\bthe ", r"\bfemale ", r", except renal pelvis",
)

#: Replacements applied to site phrases (regex → text).
SITE_REWRITES = (
    (r"bronchus or lung", "lung"), (r"bronchus and lung", "lung"), (r"\bcorpus uteri\b", "uterine corpus"),
    (r"\bcervix uteri\b", "cervix"), (r"\bunspecified site\b", ""), (r"\bunspecified sites\b", ""),
    (r"^unspecified ", ""), (r"\bunspecified\b", ""), (r"\s+", " "), (r"^[ ,]+|[ ,]+$", ""),
)

#: Concrete words for tabular site groups (the code stays the same).
SITE_VARIANTS: dict[str, tuple[str, ...]] = {
    "other parts of face": ("cheek", "forehead", "temple", "chin"),
    "other part of face": ("cheek", "forehead", "temple", "chin"),
    "other part of trunk": ("back", "upper back", "chest wall", "abdominal wall"),
    "scalp and neck": ("scalp", "neck", "posterior neck"),
    "upper limb": ("upper arm", "forearm", "shoulder", "arm"),
    "lower limb": ("thigh", "lower leg", "shin", "calf"),
    "trunk": ("back", "chest", "abdomen", "trunk"),
}

# --------------------------------------------------------------------------
# Report text
# --------------------------------------------------------------------------

SECTION_HEADERS = dict(
    specimen=["SPECIMEN:", "SPECIMEN(S):", "SPECIMEN SUBMITTED:"],
    history=["CLINICAL HISTORY:", "CLINICAL INFORMATION:", "CLINICAL HISTORY/INDICATION:"],
    gross=["GROSS DESCRIPTION:", "GROSS:"],
    micro=["MICROSCOPIC DESCRIPTION:", "MICROSCOPIC:"],
    final=["FINAL DIAGNOSIS:", "DIAGNOSIS:", "FINAL PATHOLOGIC DIAGNOSIS:"],
    comment=["COMMENT:", "NOTE:"],
)

#: Focus-sentence templates: (template, evidence). Evidence lists fragments,
#: each a pair of slot names (first, last) it spans. Slots: ``P`` part label,
#: ``M`` morphology, ``site`` site with laterality, ``organ``, ``proc``,
#: ``mods`` (``, …`` or empty). ``disc`` marks templates whose evidence is
#: discontinuous.
FOCUS_SITE = (
    ("{P}{M} of the {site}{mods}.", (("M", "site"),)),
    ("{P}{M}, {site}{mods}.", (("M", "site"),)),
    ("{P}{Organ}, {proc}: {M} involving the {site}{mods}.", (("M", "site"),)),
    ("{P}{Organ}, {proc}: {M} of the {site}{mods}.", (("M", "site"),)),
)
FOCUS_SITE_DISC = (
    ("{P}{Site}, {proc}: {M}{mods}.", (("Site", "Site"), ("M", "M"))),
    ("{P}{M}{mods}, {site}.", (("M", "M"), ("site", "site"))),
    ("{P}{Site}, {proc}: positive for {m}{mods}.", (("Site", "Site"), ("m", "m"))),
)
FOCUS_NOSITE = (
    ("{P}{Organ}, {proc}: {M}{mods}.", (("M", "M"),)),
    ("{P}{M}{mods}.", (("M", "M"),)),
    ("{P}{Organ}, {proc}: consistent with {m}{mods}.", (("m", "m"),)),
)
FOCUS_PROSE_SITE = (
    ("The findings are consistent with {m} of the {site}.", (("m", "site"),)),
    ("Sections show {m} involving the {site}{mods}.", (("m", "site"),)),
    ("Overall, the features are diagnostic of {m} of the {site}.", (("m", "site"),)),
)
FOCUS_PROSE_NOSITE = (
    ("The findings are consistent with {m}.", (("m", "m"),)),
    ("Sections show {m}{mods}.", (("m", "m"),)),
    ("Overall, the features are diagnostic of {m}.", (("m", "m"),)),
)
#: Two codes in one sentence: slots of the second code are ``m2``/``site2``.
FOCUS_PAIR = (
    ("{P}{M} of the {site}, with {m2} of the {site2}.", (("M", "site"),), (("m2", "site2"),)),
    ("{P}{M} of the {site} and {m2} of the {site2}.", (("M", "site"),), (("m2", "site2"),)),
    ("{P}{Site}, {proc}: {M}{mods}; also {m2} of the {site2}.", (("Site", "Site"), ("M", "M")),
     (("m2", "site2"),)),
)
FOCUS_PAIR_NOSITE = (
    ("{P}{Organ}, {proc}: {M} and {m2}.", (("M", "M"),), (("m2", "m2"),)),
    ("{P}{M}, with background {m2}.", (("M", "M"),), (("m2", "m2"),)),
)

SPECIMEN_LINES = ("{P}{Site}, {proc}.", "{P}{Organ}, {site}, {proc}.")
SPECIMEN_LINES_NOSITE = ("{P}{Organ}, {proc}.", "{P}{Organ}, {proc} (per requisition).")

HISTORY_OPENERS = (
    "{age}-year-old {sex} with {presenting}.",
    "{Age}-year-old {sex} presenting w/ {presenting}.",
    "Pt is a {age}-year-old {sex} with {presenting}.",
)
HISTORY_RFV = ("Clinical indication: {rfv}.", "Per requisition: {rfv}.")
HISTORY_FILLERS = (
    "No prior biopsies are on file.", "Medical history is otherwise unremarkable.",
    "The patient is s/p imaging w/ contrast.", "Anticoagulation was held prior to the procedure.",
    "Clinical history not otherwise provided.",
)
#: Distractors: other diseases mentioned but not coded in this report.
HISTORY_DISTRACTORS = (
    "History of {m} of the {site}, s/p {hproc} in {year}.",
    "Hx of {m} of the {site}.",
    "Past medical history is significant for {m} of the {site}.",
    "Prior {m} of the {site} treated w/ {hproc}.",
)
HISTORY_DISTRACTORS_NOSITE = (
    "History of {m}, s/p {hproc} in {year}.", "Hx of {m}.", "Past medical history is significant for {m}.",
)
DIFFERENTIAL_DISTRACTORS = (
    "The differential diagnosis includes {m}.",
    "{M} is considered in the differential but is not favored.",
    "Features of {m} are not identified.",
)
#: A negated disease inside a focus sentence, put before its final full stop.
FOCUS_NEGATIONS = (
    "; negative for {neg}", ", negative for {neg}", "; no evidence of {neg}", "; no {neg} identified",
    ", without {neg}", "; {neg} is not identified",
)
NEGATED_TEMPLATES = (
    "Negative for {neg}.", "No evidence of {neg}.", "No {neg} identified.", "{Neg}: not identified.",
)

GROSS_TEMPLATES = (
    "{Pp} is received in formalin labeled with the patient's name and \"{label}\" and consists of {tissue}.",
    "{Pp} is received fresh and consists of {tissue}, measuring approx. {dims} cm.",
    "{Pp} consists of {tissue} measuring {dims} cm in aggregate.",
)
GROSS_FILLERS = (
    "The specimen is entirely submitted in cassette {L}1.",
    "Representative sections are submitted in cassettes {L}1-{L}{k}.",
    "The margins are inked {color}.",
    "The cut surface is tan-white and firm.",
    "Sectioning reveals a {size} cm lesion located approx. {size2} cm from the nearest margin.",
)
INK_COLORS = ("blue", "black", "green", "orange", "yellow")

MICRO_FILLERS = (
    "Microscopic examination performed.", "Levels were examined.", "H&E sections were reviewed.",
)
COMMENT_FILLERS = (
    "Dr. {name} was notified of the diagnosis on {date}.",
    "Clinical correlation is recommended.",
    "The case was reviewed at the intradepartmental consensus conference.",
    "Immunohistochemical stains were performed w/ appropriate controls.",
    "The findings were discussed with Dr. {name}.",
    "Additional levels are available upon request.",
)
PATHOLOGIST_NAMES = ("Smith", "Nguyen", "Garcia", "Patel", "Kowalski", "Okafor", "Lindqvist", "Moreau",
                     "Tanaka", "Rossi", "Haddad", "Brennan")

#: Wording of a behaviour when neither the head nor the organ has one.
GENERIC_MORPHS = dict(
    malignant=("malignant neoplasm", "carcinoma"),
    benign=("benign neoplasm",),
    insitu=("carcinoma in situ",),
    uncertain=("neoplasm of uncertain behavior",),
    secondary=("metastatic carcinoma",),
    history=("history of malignancy",),
)
