"""Fixed clinical-style inputs for measuring modes: the same texts every time, so profiles compare.
Invented sentences; no patient data."""

EMBEDDING_TEXTS = [
    "Patient presents with chest pain radiating to the left arm and shortness of breath.",
    "No known drug allergies.",
    "Blood pressure 142/91 mmHg, heart rate 96 beats per minute, afebrile.",
    "History of type 2 diabetes mellitus managed with metformin 1000 mg twice daily.",
    "Chest X-ray shows no acute cardiopulmonary process.",
    "Started on intravenous ceftriaxone for suspected community-acquired pneumonia.",
    "Mild tenderness in the right lower quadrant without rebound or guarding.",
    "Oxygen saturation dropped to 88% on room air; placed on 2 L nasal cannula.",
    "Follow up with cardiology in two weeks for stress testing.",
    "Hemoglobin A1c of 8.2% indicates suboptimal glycemic control.",
    "Patient denies fever, chills, nausea or vomiting.",
    "Discharged home in stable condition with instructions to return if symptoms worsen.",
    "MRI of the lumbar spine demonstrates a disc herniation at L4-L5 with nerve root compression.",
    "Creatinine rose from 1.1 to 1.9 mg/dL over 48 hours, concerning for acute kidney injury.",
    "The wound is clean, dry and intact with no signs of infection.",
    "Allergic to penicillin: develops hives.",
    "Sepsis bundle initiated: lactate drawn, blood cultures obtained, fluids and antibiotics given within one hour.",
    "Pain controlled with acetaminophen and ibuprofen as needed.",
    "ECG shows sinus tachycardia with nonspecific ST changes.",
    "Fall risk assessment completed; bed alarm activated.",
    "Potassium 5.9 mmol/L, repeat sample to exclude hemolysis.",
    "Smoker, 20 pack-years, counselled on cessation.",
    "Scheduled for laparoscopic cholecystectomy tomorrow morning.",
    "Glasgow Coma Scale 15, pupils equal and reactive to light.",
]

GENERATION_PROMPTS = [
    "List three warning signs of sepsis.",
    "Explain in one sentence what a normal resting heart rate is for adults.",
    "What does SpO2 measure?",
    "Give two reasons a patient's potassium might be high.",
]

# Text the generation modes are scored on, teacher-forced: top-1 next-token agreement with fp32 and
# perplexity.
FIDELITY_TEXTS = [
    "The patient is a 67-year-old man admitted with community-acquired pneumonia. He was started on "
    "antibiotics and his oxygen saturation improved over the first 48 hours.",
    "Vital signs on arrival: temperature 38.4 degrees Celsius, heart rate 112, respiratory rate 24, "
    "blood pressure 98/60, oxygen saturation 91 percent on room air.",
    "Discharge instructions: take the medication twice daily with food, keep the wound dry, and return "
    "to the emergency department if you develop fever or increasing pain.",
    "Early warning scores combine respiratory rate, oxygen saturation, temperature, blood pressure, heart "
    "rate and level of consciousness to detect clinical deterioration.",
    "Hypoglycemia is treated with fast-acting carbohydrates, and blood glucose is rechecked after fifteen "
    "minutes until it is above four millimoles per litre.",
    "The nurse documented the handover at the shift change, including pending laboratory results and the "
    "plan for the night.",
]
