// Contrasting prompt pairs bundled with `edit-cli demo` (a harmless concept: joyful vs gloomy).
// Pairs differ only in mood, so the mean difference of their residual states isolates it.

enum DemoData {
    static let joyful: [String] = [
        "I woke up this morning feeling wonderful, the sun is shining and",
        "What a fantastic day! Everything about our trip to the beach was",
        "My friends threw me a surprise party and I felt so happy that",
        "The garden is blooming with bright flowers and the birds sing, so",
        "I just got the job I wanted and I am overjoyed because",
        "Our team won the championship and everyone was cheering and laughing while",
        "The puppy wagged its tail with delight as the children played and",
        "Tonight's dinner with my family was warm, cheerful and full of",
        "I love this city in spring: the streets are lively and",
        "She smiled brightly, hugged me and said the good news was that",
        "The concert was amazing, the music lifted everyone's spirits and",
        "After the long winter, the first warm day made me feel grateful and",
        "The wedding was a joyful celebration where everyone danced and",
        "We laughed all afternoon at the picnic, and the kids were",
        "Holidays at grandma's house are always delightful, especially when",
        "I finished my painting today and I'm thrilled with how",
    ]
    static let gloomy: [String] = [
        "I woke up this morning feeling miserable, the sky is grey and",
        "What a terrible day! Everything about our trip to the beach was",
        "My friends forgot my birthday and I felt so lonely that",
        "The garden is withered and dead and the silence is heavy, so",
        "I just lost the job I wanted and I am devastated because",
        "Our team lost the championship and everyone was crying and silent while",
        "The old dog lay still and sad as the empty house grew cold and",
        "Tonight's dinner with my family was tense, bleak and full of",
        "I hate this city in winter: the streets are empty and",
        "She frowned, turned away and said the bad news was that",
        "The concert was dreadful, the music dragged everyone down and",
        "After the long winter, the endless rain made me feel hopeless and",
        "The funeral was a sorrowful gathering where everyone wept and",
        "We sat in silence all afternoon at the hospital, and the kids were",
        "Holidays at grandma's house are always depressing, especially when",
        "I ruined my painting today and I'm heartbroken about how",
    ]
    /// Prompts used to show before/after generations.
    static let showcase: [String] = [
        "Tell me about your weekend.",
        "Describe the weather today.",
        "Write one sentence about Mondays.",
    ]
}
