# The course's Voila (make present): two lines nobody can act on stay out of the terminal
# (fcconv.course.lab.NOISE says which).
try:
    from fcconv.course.lab import filter_noise
except ImportError:
    pass
else:
    filter_noise()
