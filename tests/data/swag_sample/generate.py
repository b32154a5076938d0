"""Writes this folder's train.csv / val.csv / test.csv: a small sample in SWAG's CSV layout (Zellers et al. 2018,
github.com/rowanz/swagaf, data/*.csv): an unnamed row-index column, video-id, fold-ind, startphrase, sent1, sent2,
gold-source, ending0..ending3, label (test.csv has no label).

Every sentence here is written for this sample; none comes from SWAG. Like SWAG, sent1 describes a scene, sent2
starts the next sentence (its subject) and each ending completes it: the choice the model scores is
`sent2 + " " + endingN`. The learnable signal: the gold ending continues the activity of sent1, the three
distractors come from three other activities. Train, val and test use different scenes, and val/test use endings
that train never shows, so a model must learn "the ending fits the scene", not the sentences.

    python tests/data/swag_sample/generate.py    # deterministic (seed 0)
"""
import csv
import random
import string
from pathlib import Path

# activity -> (seven scenes as (sent1, sent2), six endings). Scenes 0-3: train, 4-5: val, 6: test;
# endings 0-3: train, 4-5: val and test.
ACTIVITIES = {
    "cooking": ([
        ("A woman cracks three eggs into a glass bowl in a bright kitchen.", "She"),
        ("A chef slices onions on a wooden cutting board.", "The chef"),
        ("A boy stands on a stool next to the stove, holding a spatula.", "He"),
        ("Two friends measure flour and sugar for a birthday cake.", "They"),
        ("A man lifts the lid off a pot of boiling pasta.", "The man"),
        ("A girl spreads butter over a tray of cookie dough.", "The girl"),
        ("An old man stirs a pan of tomato sauce on the stove.", "He"),
    ], [
        "whisks the mixture until it turns pale and frothy.",
        "pours the batter into a greased baking pan.",
        "adds a pinch of salt and stirs the pot again.",
        "slides the tray into the hot oven and sets a timer.",
        "tastes the sauce from a wooden spoon and adds more pepper.",
        "chops a handful of fresh herbs and sprinkles them over the dish.",
    ]),
    "swimming": ([
        ("A swimmer adjusts her goggles at the edge of the pool.", "She"),
        ("A lifeguard blows a whistle from a tall white chair.", "The lifeguard"),
        ("A boy in red trunks climbs onto the diving board.", "The boy"),
        ("Several swimmers line up on the starting blocks.", "They"),
        ("A coach walks along the lane ropes holding a stopwatch.", "The coach"),
        ("A girl floats on her back in the shallow end of the pool.", "The girl"),
        ("A man pulls on a swim cap beside the lap pool.", "He"),
    ], [
        "dives into the water and swims toward the far wall.",
        "kicks off the wall and glides under the surface.",
        "takes a deep breath and plunges into the deep end.",
        "climbs out of the pool and wraps up in a towel.",
        "swims a fast lap of freestyle, splashing water over the edge.",
        "treads water in the middle of the lane and catches a breath.",
    ]),
    "guitar": ([
        ("A young man sits on a bed with an acoustic guitar on his knee.", "He"),
        ("A woman tunes the strings of her guitar on a small stage.", "She"),
        ("A street musician opens his guitar case on the sidewalk.", "The musician"),
        ("A teenager plugs an electric guitar into an amplifier.", "The teenager"),
        ("A girl holds a pick and looks at a chord chart on a music stand.", "The girl"),
        ("Two men sit facing each other with guitars in a living room.", "They"),
        ("A man clamps a capo onto the neck of his guitar.", "The man"),
    ], [
        "strums a few chords and starts singing softly.",
        "plucks the strings one by one, listening to each note.",
        "plays a loud riff and the amplifier buzzes.",
        "turns the tuning pegs until the strings sound right.",
        "taps a foot in time and plays a slow melody on the guitar.",
        "slides a hand along the fretboard to the next chord.",
    ]),
    "skateboarding": ([
        ("A teenager carries a skateboard into an empty parking lot.", "He"),
        ("A girl in knee pads stands at the top of a concrete ramp.", "She"),
        ("A group of kids gather around a metal rail at the skate park.", "They"),
        ("A man balances one foot on his board at the edge of the bowl.", "The man"),
        ("A boy wipes dust off the wheels of his skateboard.", "The boy"),
        ("A young woman sets a longboard down at the top of a sloping street.", "The woman"),
        ("A skater rolls toward a short set of concrete stairs.", "The skater"),
    ], [
        "drops onto the board and rolls down the ramp.",
        "pops the board into the air and lands a kickflip.",
        "grinds along the rail and jumps off at the end.",
        "loses balance and the skateboard shoots away across the pavement.",
        "pushes off with one foot and carves around the skate bowl.",
        "flips the skateboard with a toe and catches it in one hand.",
    ]),
    "painting": ([
        ("A man spreads plastic sheets over the living room floor.", "He"),
        ("An artist squeezes blue paint onto a wooden palette.", "The artist"),
        ("A woman dips a wide brush into a can of white paint.", "She"),
        ("Two workers lean a ladder against the side of a house.", "They"),
        ("A girl sits in front of an easel with a blank canvas.", "The girl"),
        ("A painter tapes the edges of a window frame.", "The painter"),
        ("A boy opens a box of watercolors at the kitchen table.", "The boy"),
    ], [
        "rolls a coat of paint evenly across the wall.",
        "brushes a wide stroke of color across the canvas.",
        "mixes two colors together until the shade looks right.",
        "paints carefully along the edge of the trim.",
        "steps back to look at the picture and adds a few dabs of paint.",
        "climbs the ladder and paints the top of the wall.",
    ]),
    "soccer": ([
        ("A player places the ball on the penalty spot.", "The player"),
        ("A goalkeeper crouches in the middle of the goal with arms spread.", "The goalkeeper"),
        ("Kids in blue jerseys run across a muddy field.", "They"),
        ("A coach sets out orange cones on the grass.", "The coach"),
        ("A striker dribbles past two defenders near the corner flag.", "He"),
        ("A girl juggles a soccer ball on one foot in the backyard.", "She"),
        ("A referee jogs to the center circle holding the ball.", "The referee"),
    ], [
        "kicks the ball hard into the top corner of the net.",
        "dives to the side and blocks the shot with both hands.",
        "passes the ball across the field to a teammate.",
        "heads the ball over the defender toward the goal.",
        "chases the ball down the sideline and crosses it in front of the goal.",
        "traps the ball with one foot and shoots it past the goalkeeper.",
    ]),
    "dogs": ([
        ("A woman clips a leash onto a brown dog's collar.", "She"),
        ("A man throws a tennis ball across a wide park for his dog.", "The man"),
        ("A puppy tugs at the end of a rope toy held by a boy.", "The boy"),
        ("A groomer lifts a fluffy white dog onto a table.", "The groomer"),
        ("Two children walk a large dog along the beach.", "They"),
        ("A girl kneels beside a muddy dog with a bucket of soapy water.", "The girl"),
        ("An old man sits on a bench while his dog sniffs the grass.", "He"),
    ], [
        "lets the dog off the leash and it races after the ball.",
        "scratches the dog behind the ears while its tail wags.",
        "gives the dog a treat when it sits down.",
        "trims the fur around the dog's paws with small scissors.",
        "rinses the suds off the dog's fur and the dog shakes itself dry.",
        "pulls gently on the leash as the dog stops to sniff a tree.",
    ]),
    "skiing": ([
        ("A skier stands at the top of a steep snowy slope.", "The skier"),
        ("A family rides a chairlift up the mountain.", "They"),
        ("A boy straps his boots into a snowboard.", "He"),
        ("A woman plants her ski poles at the edge of the trail.", "She"),
        ("An instructor lines up a row of children on small skis.", "The instructor"),
        ("A man zips his jacket as snow falls outside the ski lodge.", "The man"),
        ("A girl slides off the lift onto the packed snow.", "The girl"),
    ], [
        "pushes off and carves wide turns down the slope.",
        "tucks low and speeds down the hill through the fresh powder.",
        "falls into a soft snowbank and laughs.",
        "glides to a stop, spraying snow to the side.",
        "shows how to point the skis into a wedge to slow down on the snow.",
        "slaloms between the red flags on the ski course.",
    ]),
    "gardening": ([
        ("A woman kneels in a flower bed wearing thick gloves.", "She"),
        ("A man pushes a wheelbarrow full of soil across the yard.", "The man"),
        ("A boy holds a small watering can next to a row of seedlings.", "The boy"),
        ("A gardener trims the hedge along a stone path.", "The gardener"),
        ("Two neighbors dig holes for tomato plants.", "They"),
        ("An old woman picks ripe strawberries in her garden.", "The woman"),
        ("A girl plants sunflower seeds in a clay pot.", "The girl"),
    ], [
        "pulls the weeds out by the roots and tosses them in a bucket.",
        "digs a hole and sets the young plant into the soil.",
        "waters the seedlings until the dirt turns dark.",
        "snips off the dead leaves with a pair of garden shears.",
        "pats the soil down firmly around the stem of the plant.",
        "spreads mulch around the base of the bushes in the garden.",
    ]),
    "car washing": ([
        ("A man parks his car in the driveway and fills a bucket with soapy water.", "He"),
        ("A woman sprays the dusty hood of a red truck with a hose.", "She"),
        ("Two teenagers hold up a sign for a charity car wash.", "They"),
        ("A mechanic opens the hood of a silver car.", "The mechanic"),
        ("A boy wrings out a sponge next to the family van.", "The boy"),
        ("A worker drives a car into the automatic car wash.", "The worker"),
        ("A girl polishes the side mirror of a car with a cloth.", "The girl"),
    ], [
        "scrubs the tires with a stiff brush until they shine.",
        "rinses the soap off the windshield with the hose.",
        "wipes the car dry with a soft towel.",
        "checks the engine oil and adds a little more.",
        "waxes the car door in small circles until it gleams.",
        "vacuums the crumbs off the car seats and floor mats.",
    ]),
    "haircut": ([
        ("A barber drapes a cape over a customer's shoulders.", "The barber"),
        ("A woman sits in a salon chair as her hair is brushed out.", "The stylist"),
        ("A man holds a pair of clippers in front of a mirror.", "He"),
        ("A girl sits on a stool while her mother combs her wet hair.", "Her mother"),
        ("A stylist sections a client's hair with plastic clips.", "She"),
        ("A young man leans back over a sink at the salon.", "The hairdresser"),
        ("A boy looks nervous in the barber's chair.", "The barber"),
    ], [
        "trims the ends of the hair with quick snips of the scissors.",
        "runs the clippers up the back of the neck.",
        "blow dries the hair while brushing it straight.",
        "braids the hair into two neat plaits.",
        "washes the hair with shampoo and rinses it with warm water.",
        "shaves the sides of the head short and combs the hair on top.",
    ]),
    "bowling": ([
        ("A man picks up a heavy green ball from the return rack.", "He"),
        ("A girl stands at the foul line of a bowling lane.", "She"),
        ("Friends in rented shoes cheer at the bowling alley.", "They"),
        ("A woman lines up her shot, holding the ball at her chest.", "The woman"),
        ("A boy bowls with the bumpers up at a birthday party.", "The boy"),
        ("An old man wipes his bowling ball with a towel.", "The man"),
        ("A bowler waits as the pins are reset at the end of the lane.", "The bowler"),
    ], [
        "rolls the ball down the lane and knocks down every pin.",
        "swings the ball back and releases it with a spin.",
        "watches the ball curve into the gutter and groans.",
        "picks up the spare by hitting the last two pins.",
        "high fives a friend after a strike shows up on the bowling screen.",
        "sends the ball straight down the lane and the pins scatter.",
    ]),
    "sewing": ([
        ("An old woman sits in a rocking chair with a basket of yarn.", "She"),
        ("A girl holds two knitting needles and a ball of red wool.", "The girl"),
        ("A tailor pins the hem of a pair of trousers.", "The tailor"),
        ("A man sits at a sewing machine with a stack of fabric.", "He"),
        ("Two friends compare scarves at a knitting circle.", "They"),
        ("A woman threads a needle by the window.", "The woman"),
        ("A boy holds a torn shirt and a spool of thread.", "The boy"),
    ], [
        "loops the yarn around the needle and pulls it through.",
        "knits another row of the scarf.",
        "feeds the fabric through the machine along a straight seam.",
        "sews a button onto the shirt with small stitches.",
        "cuts the thread and ties a knot at the end of the seam.",
        "holds up the finished sweater and checks the length of the sleeves.",
    ]),
    "kayaking": ([
        ("A man drags a yellow kayak to the edge of the lake.", "He"),
        ("A rowing crew carries their long boat down to the river.", "They"),
        ("A woman fastens her life jacket on a wooden dock.", "She"),
        ("A boy sits in a canoe holding a paddle across his lap.", "The boy"),
        ("A guide points at the rapids ahead of the rafts.", "The guide"),
        ("A girl pushes a small rowboat off the sandy shore.", "The girl"),
        ("Two men paddle a canoe between tall reeds.", "The men"),
    ], [
        "paddles steadily across the calm lake.",
        "dips the oar into the water and pulls back hard.",
        "steers the kayak around a large rock in the river.",
        "rolls the kayak upside down and flips back up.",
        "rows in time with the others as the boat moves quickly down the river.",
        "splashes through the rapids and paddles to the bank.",
    ]),
    "cleaning": ([
        ("A man fills a bucket and climbs up to a dirty window.", "He"),
        ("A woman pulls a vacuum cleaner out of the closet.", "She"),
        ("A boy holds a dustpan while his sister sweeps the kitchen.", "They"),
        ("A janitor pushes a mop bucket down a long hallway.", "The janitor"),
        ("A girl sprays cleaner on the bathroom mirror.", "The girl"),
        ("A cleaner lifts the cushions off a dusty sofa.", "The cleaner"),
        ("An old man shakes out a rug on the porch.", "The man"),
    ], [
        "mops the floor in long strokes until it shines.",
        "vacuums the carpet, moving the chairs out of the way.",
        "wipes the glass with a cloth until no streaks remain.",
        "sweeps the dust into a pile and into the dustpan.",
        "scrubs the tiles with a brush and rinses them clean.",
        "dusts the shelves and the lamp with a feather duster.",
    ]),
}

HEADER = ["", "video-id", "fold-ind", "startphrase", "sent1", "sent2", "gold-source",
          "ending0", "ending1", "ending2", "ending3", "label"]


def rows(rng, scene_ids, ending_ids, n):
    names = list(ACTIVITIES)
    plan = [(a, s, e) for s, e in zip(scene_ids, ending_ids) for a in names]
    rng.shuffle(plan)
    out = []
    for activity, scene, ending in plan[:n]:
        scenes, endings = ACTIVITIES[activity]
        sent1, sent2 = scenes[scene]
        others = rng.sample([a for a in names if a != activity], 3)
        distractors = [ACTIVITIES[a][1][rng.choice(ending_ids)] for a in others]
        label = rng.randrange(4)
        choices = distractors[:label] + [endings[ending]] + distractors[label:]
        source = "anetv" if rng.random() < 0.5 else "lsmdc"
        vid = f"{source}_" + "".join(rng.choices(string.ascii_letters + string.digits, k=11))
        out.append([vid, str(rng.randrange(1000, 30000)), f"{sent1} {sent2}", sent1, sent2,
                    rng.choice(["gold", "gen"]), *choices, str(label)])
    return out


def write(path, data, labelled=True):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER if labelled else HEADER[:-1])
        for i, r in enumerate(data):
            w.writerow([i, *(r if labelled else r[:-1])])


def main():
    rng = random.Random(0)
    here = Path(__file__).resolve().parent
    write(here / "train.csv", rows(rng, [0, 1, 2, 3], [0, 1, 2, 3], 60))
    write(here / "val.csv", rows(rng, [4, 5], [4, 5], 30))
    write(here / "test.csv", rows(rng, [6], [4], 10), labelled=False)


if __name__ == "__main__":
    main()
